"""Fine-tune a BERT-style encoder for text classification, behind the shared estimator interface.

``init`` picks the starting weights:

- a local folder: our pretrained MLM folder (``lmforge pretrain`` output) or any local HF encoder
  folder; ``AutoModelForSequenceClassification.from_pretrained`` drops the MLM head and adds a
  fresh classifier; the tokenizer comes from the same folder (or ``tokenizer=DIR``);
- ``"none"``: random init. The architecture is ``config_from``'s ``config.json`` if given, else
  ``preset`` (:func:`lmforge.models.presets.build_config`); the tokenizer is ``tokenizer=DIR``
  (or ``config_from`` when it holds one), else a WordPiece vocabulary trained on the fit texts.

Training (through :func:`lmforge.training.fit`, as every torch trainer): AdamW (no decay on
biases / LayerNorm), linear warmup then linear decay, gradient clipping at 1, length-bucketed
batches (sorted by length within pools of 50 batches, batches shuffled with ``seed``) so little
compute goes to padding, bf16 autocast where :func:`lmforge.training.choose_dtype` measures it
faster; ``device``: ``auto`` (CUDA when present), ``cpu`` or ``cuda``. ``freeze_layers=N``
freezes the embeddings and the first N encoder layers. With a validation set (``X_val`` /
``y_val``, or ``val_fraction`` of the training data) each epoch is scored by macro-F1, training
stops after ``patience`` epochs without a gain and the best epoch's weights are kept.

Speed (docs/benchmarks_training.md): batches are padded to a multiple of ``pad_multiple``
tokens (16), so that oneDNN meets a few shapes and reuses its kernels instead of building one
per padded length.

Fine-tuning recipe options (issue 13, lever 3; off by default until measured better):
``layer_decay`` (< 1: lower layers train at geometrically smaller learning rates),
``reinit_layers`` (re-initialise the top N encoder layers and the pooler), ``max_len``.

Dropout: our presets pretrain without dropout; ``dropout=None`` keeps the folder's setting,
a number sets hidden and attention dropout for fine-tuning (it costs speed on CPU: the
attention-probability dropout keeps SDPA off its fused kernel; see docs/benchmarks_transformer.md).

Saved as a ``save_pretrained`` folder (``config.json``, ``model.safetensors``, tokenizer files)
plus ``lmforge_model.json``: ``AutoModelForSequenceClassification`` loads it as is. Loading
reads safetensors only, never a pickle.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path

import numpy as np

from lmforge.classify.estimator import register_model
from lmforge.classify.torch_classifier import TorchTextClassifier
from lmforge.errors import LmforgeError
from lmforge.tokenizer.folder import ALL_TOKENIZER_FILES
from lmforge.training import Schedule, choose_dtype

#: smallest inference batch run under bf16 autocast (see TransformerClassifier.inference_dtype)
BF16_MIN_ROWS = 8
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# what save_pretrained of a model + tokenizer may write
SAVED_FILES = {WEIGHTS_FILE, CONFIG_FILE, "generation_config.json", *ALL_TOKENIZER_FILES}


def random_init_params(encoder_dir: str | Path) -> dict[str, str]:
    """The parameters that fine-tune ``encoder_dir``'s architecture and tokenizer from fresh
    weights: the random-init control for a pretrained encoder."""
    return {"init": "none", "tokenizer": str(encoder_dir), "config_from": str(encoder_dir)}


@contextlib.contextmanager
def quiet_transformers():
    """transformers' logging at error level inside the block (its expected-warning reports)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


@register_model("transformer")
class TransformerClassifier(TorchTextClassifier):
    """Fine-tuned BERT-style encoder: ``init`` = pretrained folder or ``"none"`` (random init)."""

    search_space = {"lr": [1e-4, 2e-4, 5e-4], "batch_size": [16, 32]}
    seed_param = "seed"
    fused_adamw = True

    def __init__(
        self,
        init="none",
        tokenizer=None,
        preset="tiny",
        config_from=None,
        epochs=3,
        lr=2e-4,
        batch_size=32,
        max_len=128,
        warmup_ratio=0.1,
        weight_decay=0.01,
        freeze_layers=0,
        patience=2,
        val_fraction=0.0,
        dropout=None,
        layer_decay=1.0,
        reinit_layers=0,
        pad_multiple=16,
        dtype="auto",
        threads=0,
        vocab_size=2000,
        seed=0,
        device="auto",
    ):
        self.init = init
        self.tokenizer = tokenizer
        self.preset = preset
        self.config_from = config_from
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_len = max_len
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.freeze_layers = freeze_layers
        self.patience = patience
        self.val_fraction = val_fraction
        self.dropout = dropout
        self.layer_decay = layer_decay
        self.reinit_layers = reinit_layers
        self.pad_multiple = pad_multiple
        self.dtype = dtype
        self.threads = threads
        self.vocab_size = vocab_size
        self.seed = seed
        self.device = device

    # -- model + tokenizer -------------------------------------------------------------------
    def _from_scratch(self) -> bool:
        return self.init is None or str(self.init).lower() == "none"

    def _load_tokenizer(self, texts):
        from lmforge.tokenizer.folder import load_tokenizer

        if self.tokenizer:
            return load_tokenizer(self.tokenizer)
        if not self._from_scratch():
            return load_tokenizer(self.init)
        if self.config_from and any(
            (Path(self.config_from) / f).is_file() for f in ("tokenizer.json", "vocab.txt")
        ):
            return load_tokenizer(self.config_from)
        from lmforge.tokenizer.train import train_tokenizer

        with tempfile.TemporaryDirectory() as tmp:
            train_tokenizer(texts, "wordpiece", int(self.vocab_size), Path(tmp))
            return load_tokenizer(tmp)

    def _label_maps(self) -> tuple[dict, dict]:
        names = [str(c) for c in self.classes_.tolist()]
        return dict(enumerate(names)), {n: i for i, n in enumerate(names)}

    def _dropout_kwargs(self) -> dict:
        if self.dropout is None:
            return {}
        p = float(self.dropout)
        return {"hidden_dropout_prob": p, "attention_probs_dropout_prob": p}

    def _build_model(self):
        from transformers import AutoConfig, AutoModelForSequenceClassification

        id2label, label2id = self._label_maps()
        labels = {"num_labels": len(id2label), "id2label": id2label, "label2id": label2id}
        if not self._from_scratch():
            path = Path(self.init)
            if not (path / CONFIG_FILE).is_file():
                raise LmforgeError(f"init={path}: not a model folder (no {CONFIG_FILE})")
            kwargs = {**labels, **self._dropout_kwargs()}
            with quiet_transformers():  # its report lists the (expected) new classifier
                try:
                    return AutoModelForSequenceClassification.from_pretrained(
                        path, attn_implementation="sdpa", **kwargs
                    )
                except (ValueError, ImportError):  # an architecture without SDPA support
                    return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
        if self.config_from:
            path = Path(self.config_from)
            if not (path / CONFIG_FILE).is_file():
                raise LmforgeError(f"config_from={path}: no {CONFIG_FILE}")
            config = AutoConfig.from_pretrained(path)
        else:
            from lmforge.models.presets import build_config

            pad = self.tokenizer_.pad_token_id
            config = build_config(
                "mlm",
                self.preset,
                len(self.tokenizer_),
                max_len=int(self.max_len),
                pad_token_id=int(pad) if pad is not None else 0,
            )
        for key, value in {**labels, **self._dropout_kwargs()}.items():
            setattr(config, key, value)
        if config.vocab_size < len(self.tokenizer_):
            raise LmforgeError(
                f"tokenizer has {len(self.tokenizer_)} tokens but the model only "
                f"{config.vocab_size}: use the tokenizer the config was made for"
            )
        return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")

    def _encoder_layers(self, option: str):
        base = self.model_.base_model
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        if layers is None or not hasattr(base, "embeddings"):
            raise LmforgeError(f"{option}: {type(base).__name__} has no embeddings / encoder.layer")
        return base, layers

    def _reinit_top(self) -> None:
        """``reinit_layers=N``: the top N encoder layers (and the pooler) start from fresh
        weights (Zhang et al. 2021, "Revisiting few-sample BERT fine-tuning")."""
        n = int(self.reinit_layers or 0)
        if n <= 0:
            return
        base, layers = self._encoder_layers("reinit_layers")
        if n > len(layers):
            raise LmforgeError(f"reinit_layers={n} but the encoder has {len(layers)} layers")
        import torch

        std = float(getattr(self.model_.config, "initializer_range", 0.02))
        top = [*layers[len(layers) - n :], getattr(base, "pooler", None)]
        with torch.no_grad():  # BERT's init (its _init_weights skips already-loaded weights)
            for module in (m for part in top if part is not None for m in part.modules()):
                if isinstance(module, torch.nn.Linear):
                    module.weight.normal_(0.0, std)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, torch.nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()

    def lr_scale(self):
        """``layer_decay=d < 1``: layer i of L trains at lr x d^(L - i), the embeddings at
        lr x d^(L + 1), the pooler and classifier at lr (ELECTRA / BEiT layer-wise decay)."""
        d = float(self.layer_decay)
        if d == 1.0:
            return None
        _, layers = self._encoder_layers("layer_decay")
        n = len(layers)

        def scale(name: str) -> float:
            m = re.search(r"encoder\.layer\.(\d+)\.", name)
            if m:
                return d ** (n - int(m.group(1)))
            return d ** (n + 1) if ".embeddings." in f".{name}" else 1.0

        return scale

    def _freeze(self) -> None:
        n = int(self.freeze_layers or 0)
        if n <= 0:
            return
        base = self.model_.base_model
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        if layers is None or not hasattr(base, "embeddings"):
            raise LmforgeError(
                f"freeze_layers: {type(base).__name__} has no embeddings / encoder.layer"
            )
        if n > len(layers):
            raise LmforgeError(f"freeze_layers={n} but the encoder has {len(layers)} layers")
        for module in [base.embeddings, *layers[:n]]:
            for p in module.parameters():
                p.requires_grad_(False)

    def init_model(self, texts) -> None:
        self.tokenizer_ = self._load_tokenizer(texts)
        pad = self.tokenizer_.pad_token_id
        self.pad_id_ = int(pad) if pad is not None else 0
        self.model_ = self._build_model()
        self._freeze()
        self._reinit_top()
        self.dtype_, self.dtype_reason_ = choose_dtype(self.device_, self.dtype)

    def use_model(self, model, tokenizer) -> None:
        """Train an already built ``model`` + ``tokenizer`` (e.g. a distillation student)."""
        from lmforge.training import resolve_device

        self.device_ = resolve_device(self.device)
        self.tokenizer_ = tokenizer
        pad = tokenizer.pad_token_id
        self.pad_id_ = int(pad) if pad is not None else 0
        self.model_ = model
        self.dtype_, self.dtype_reason_ = choose_dtype(self.device_, self.dtype)

    # -- batching and the forward pass -------------------------------------------------------
    def max_tokens(self) -> int:
        limit = int(self.max_len)
        positions = getattr(self.model_.config, "max_position_embeddings", None)
        return min(limit, int(positions)) if positions else limit

    def encode(self, texts) -> list[np.ndarray]:
        texts = ["" if t is None else str(t) for t in texts]
        enc = self.tokenizer_(texts, truncation=True, max_length=self.max_tokens())
        return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]

    def forward(self, batch):
        return self.model_(**batch.inputs).logits

    def schedule(self, total_steps: int) -> Schedule:
        warmup = int(round(float(self.warmup_ratio) * total_steps))
        return Schedule("linear", warmup_steps=warmup, total_steps=total_steps)

    def training_dtype(self) -> str:
        return getattr(self, "dtype_", "fp32")

    # -- sklearn API -------------------------------------------------------------------------
    def fit(self, texts, y, X_val=None, y_val=None):
        if self.threads:
            import torch

            torch.set_num_threads(int(self.threads))
        return super().fit(texts, y, X_val, y_val)

    def inference_dtype(self, rows: int) -> str:
        """bf16 for a batch of ``BF16_MIN_ROWS``+ texts when training chose it, else fp32.

        Training's choice is measured on training-size batches; at inference a small batch is
        slower under bf16 autocast (the casts cost more than the matmuls save). Measured on
        the 2-core CPU, 4 × 256 encoder, ms per text bf16 / fp32: 18.6 / 9.1 at 1 text,
        9.7 / 6.9 at 4, 5.4 / 7.0 at 8, 4.0 / 9.1 at 32.
        """
        trained = getattr(self, "dtype_", "fp32")
        return "bf16" if trained == "bf16" and rows >= BF16_MIN_ROWS else "fp32"

    # -- persistence -------------------------------------------------------------------------
    def _extra_meta(self) -> dict:
        return {
            "transformer": {
                "dtype": getattr(self, "dtype_", None),
                "dtype_reason": getattr(self, "dtype_reason_", None),
                "architecture": type(self.model_).__name__,
                "parameters": int(sum(p.numel() for p in self.model_.parameters())),
            },
            "history": getattr(self, "history_", []),
        }

    def _save_weights(self, directory: Path) -> list[str]:
        self.model_.save_pretrained(str(directory), safe_serialization=True)
        self.tokenizer_.save_pretrained(str(directory))
        return sorted(p.name for p in directory.iterdir() if p.name in SAVED_FILES)

    def _load_weights(self, directory: Path, meta: dict) -> None:
        from transformers import AutoModelForSequenceClassification

        from lmforge.tokenizer.folder import load_tokenizer

        if not (directory / WEIGHTS_FILE).is_file():
            raise LmforgeError(f"model file not found: {directory / WEIGHTS_FILE}")
        self.classes_ = np.asarray(meta["label_names"])
        self.tokenizer_ = load_tokenizer(directory)
        pad = self.tokenizer_.pad_token_id
        self.pad_id_ = int(pad) if pad is not None else 0
        self.model_ = AutoModelForSequenceClassification.from_pretrained(
            directory, use_safetensors=True, attn_implementation="sdpa"
        )
        self.model_.eval()
        self.to_device()
        info = meta.get("transformer") or {}
        self.dtype_ = info.get("dtype") or "fp32"
        self.dtype_reason_ = info.get("dtype_reason")
        self.history_ = meta.get("history", [])
