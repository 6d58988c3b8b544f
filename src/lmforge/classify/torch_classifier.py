"""The base of every torch text classifier (TextCNN, BiLSTM, GRU, fine-tuned transformer).

Public, and what :mod:`lmforge.compress` builds on:

- ``encode(texts) -> list[np.ndarray]``: token ids per text (subclass);
- ``batches(encoded, order) -> Iterator[Batch]``: padded model inputs for each id group in
  ``order`` (``input_ids`` + ``attention_mask``, or ``ids`` + ``lengths``);
- ``forward(batch) -> logits`` (subclass);
- ``init_model(texts)``: tokenizer / vocabulary and an untrained network for ``classes_``;
- ``train_network(texts, loss, ...)``: training through :func:`lmforge.training.fit` with any
  loss of ``(logits, batch)`` -- cross-entropy for ``fit``, the distillation loss, recovery.

``fit`` is cross-entropy on the labels with early stopping on validation macro-F1 (the
``X_val``/``y_val`` given, else ``val_fraction`` of the training data held out, stratified);
``predict_proba`` runs length-sorted batches and returns rows in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from lmforge.classify.estimator import TextClassifier
from lmforge.classify.metrics import classification_metrics
from lmforge.errors import LmforgeError
from lmforge.training import (
    Batch,
    FitResult,
    Schedule,
    adamw,
    autocast,
    bucketed_batches,
    fit,
    pad_batch,
    param_groups,
    resolve_device,
)
from lmforge.training.batching import sorted_batches


class TorchTextClassifier(TextClassifier):
    """Shared encode -> batches -> forward, training and batched inference."""

    uses_validation = True
    #: "mask": input_ids + attention_mask (transformers); "lengths": ids + lengths (CNN / RNN)
    input_kind = "mask"
    #: the constructor parameter that holds the seed
    seed_param = "random_state"
    #: torch's fused AdamW kernel (one kernel for every parameter) where the build has one
    fused_adamw = False

    # -- subclass hooks ----------------------------------------------------------------------
    def encode(self, texts) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch: Batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def init_model(self, texts) -> None:  # pragma: no cover - abstract
        """Set up the tokenizer / vocabulary and an untrained ``model_`` for ``classes_``."""
        raise NotImplementedError

    def max_tokens(self) -> int | None:
        """The longest input the network takes (padding never goes past it)."""
        return None

    def training_dtype(self) -> str:
        return "fp32"

    def inference_dtype(self, rows: int) -> str:
        return "fp32"

    def schedule(self, total_steps: int) -> Schedule | None:
        return None

    def lr_scale(self) -> Callable[[str], float] | None:
        return None

    # -- batching ----------------------------------------------------------------------------
    def batches(self, encoded, order) -> Iterator[Batch]:
        import torch

        for idx in order:
            idx = np.asarray(idx)
            ids, lengths = pad_batch(
                encoded, idx, self.pad_id_, getattr(self, "pad_multiple", 1), self.max_tokens()
            )
            if self.input_kind == "mask":
                mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
                inputs = {
                    "input_ids": torch.from_numpy(ids),
                    "attention_mask": torch.from_numpy(mask),
                }
            else:
                inputs = {"ids": torch.from_numpy(ids), "lengths": torch.from_numpy(lengths)}
            yield Batch(idx, inputs, int(lengths.sum()))

    def _seed(self) -> int:
        return int(getattr(self, self.seed_param) or 0)

    # -- training ----------------------------------------------------------------------------
    def train_network(
        self,
        texts,
        loss: Callable,
        X_val=None,
        y_val=None,
        *,
        rng: np.random.Generator,
        name: str,
        epochs: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        schedule: Schedule | None | str = "default",
        patience: int | None = None,
        on_step=None,
    ) -> FitResult:
        """Train ``model_`` on ``texts`` minimising ``loss(logits, batch)``.

        Defaults (epochs, lr, weight decay, schedule, patience) are the estimator's own; early
        stopping on macro-F1 when ``X_val`` is given. ``name`` labels the run for observers.
        """
        encoded = self.encode(texts)
        lengths = np.asarray([len(e) for e in encoded])
        bs, epochs = int(self.batch_size), int(self.epochs if epochs is None else epochs)
        steps = max(1, -(-len(encoded) // bs) * epochs)
        if schedule == "default":
            schedule = self.schedule(steps)
        wd = self.weight_decay if weight_decay is None else weight_decay
        groups = param_groups(self.model_, wd, self.lr_scale())
        optimizer = adamw(groups, lr or self.lr, fused=self.fused_adamw)
        evaluate = None
        if X_val is not None and len(X_val):
            labels = self.classes_.tolist()

            def evaluate() -> float:
                return classification_metrics(y_val, self.predict(X_val), labels)["macro_f1"]

        result = fit(
            self.model_,
            lambda batch: loss(self.forward(batch), batch),
            lambda rng: self.batches(encoded, bucketed_batches(lengths, bs, rng)),
            optimizer=optimizer,
            epochs=epochs,
            schedule=schedule,
            device=self.device_,
            dtype=self.training_dtype(),
            rng=rng,
            evaluate=evaluate,
            patience=self.patience if patience is None else patience,
            name=name,
            on_step=on_step,
        )
        return result

    def fit(self, texts, y, X_val=None, y_val=None):
        import torch

        texts = list(texts)
        y = np.asarray(y)
        if len(texts) != len(y):
            raise LmforgeError(f"{len(texts)} texts but {len(y)} labels")
        seed = self._seed()
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        if X_val is None and self.val_fraction and len(texts) >= 20:
            from sklearn.model_selection import train_test_split

            try:
                texts, X_val, y, y_val = train_test_split(
                    texts, y, test_size=self.val_fraction, stratify=y, random_state=seed
                )
            except ValueError:  # a class too small to stratify: no early stopping
                X_val = None
        self.setup(np.unique(y), texts)
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        targets = torch.tensor([index[c] for c in y.tolist()], device=self.device_)

        def cross_entropy(logits, batch):
            return torch.nn.functional.cross_entropy(logits.float(), targets[batch.idx])

        result = self.train_network(
            texts, cross_entropy, X_val, y_val, rng=rng, name=self.model_type
        )
        self.history_ = result.history
        self.best_val_macro_f1_ = result.best_score
        return self

    def setup(self, classes, texts) -> None:
        """An untrained classifier for ``classes``: device, tokenizer / vocabulary, network."""
        self.classes_ = np.asarray(classes)
        self.device_ = resolve_device(self.device)
        self.init_model(texts)

    # -- inference ---------------------------------------------------------------------------
    def predict_proba(self, texts) -> np.ndarray:
        import torch

        self._check_fitted()
        encoded = self.encode(list(texts))
        out = np.zeros((len(encoded), len(self.classes_)), dtype=np.float64)
        device = getattr(self, "device_", None) or torch.device("cpu")
        order = sorted_batches([len(e) for e in encoded], int(self.batch_size))
        self.model_.eval()
        with torch.inference_mode():
            for batch in self.batches(encoded, order):
                batch = batch.to(device)
                with autocast(device, self.inference_dtype(len(batch))):
                    logits = self.forward(batch)
                out[batch.idx] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        return out

    def to_device(self, device: str | None = None) -> None:
        """Move the model to ``device`` (default: the constructor's ``device``)."""
        if device is not None:
            self.device = device
        self.device_ = resolve_device(getattr(self, "device", "auto"))
        self.model_.to(self.device_)
