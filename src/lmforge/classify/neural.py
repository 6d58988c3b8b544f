"""Neural baselines in PyTorch behind the shared estimator interface: TextCNN, BiLSTM, GRU.

Tokens come from a tokenizer folder (``tokenizer=DIR``: any folder that
``transformers.AutoTokenizer.from_pretrained`` loads, e.g. one written by
``lmforge.tokenizer.train.train_tokenizer``), or -- with ``tokenizer=None`` -- from a character
vocabulary built in ``fit`` (NFKC, lower-cased characters seen at least ``min_freq`` times;
ids 0 = pad, 1 = unknown).

Training: AdamW, cross-entropy, length-bucketed batches, early stopping on validation
macro-F1 (the ``X_val``/``y_val`` passed to ``fit``, else ``val_fraction`` of the training data
held out, stratified), the best epoch's weights kept. Saved as ``model.safetensors``; the
architecture, vocabulary and label names live in ``lmforge_model.json``; a tokenizer folder is
copied to ``DIR/tokenizer``.
"""

from __future__ import annotations

import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from lmforge.classify.estimator import TextClassifier, register_model
from lmforge.classify.metrics import classification_metrics
from lmforge.errors import LmforgeError

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_SUBDIR = "tokenizer"
PAD, UNK = 0, 1


class EarlyStopping:
    """Early stopping on validation macro-F1 that keeps the best epoch's weights.

    ``update`` after each epoch returns True once ``patience`` epochs in a row brought
    no gain; ``restore`` puts the best weights back. Shared by every torch classifier.
    """

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best = -1.0
        self.bad_epochs = 0
        self.state: dict | None = None

    def update(self, score: float, model) -> bool:
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def end_epoch(self, estimator, record: dict, X_val, y_val) -> bool:
        """Score the epoch on the validation texts (when given), append ``record`` to the
        estimator's ``history_``; True when training should stop."""
        stop = False
        if X_val is not None and len(X_val):
            labels = estimator.classes_.tolist()
            f1 = classification_metrics(y_val, estimator.predict(X_val), labels)["macro_f1"]
            record["val_macro_f1"] = f1
            stop = self.update(f1, estimator.model_)
        estimator.history_.append(record)
        return stop

    def restore(self, model) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)

    @property
    def best_score(self) -> float | None:
        return self.best if self.best >= 0 else None


def _torch():
    import torch

    return torch


def build_network(
    arch: str,
    vocab_size: int,
    n_classes: int,
    embed_dim: int,
    hidden: int,
    dropout: float,
    bidirectional: bool,
    pad_id: int,
):
    """The torch module of an architecture (built on demand so importing this file is cheap)."""
    torch = _torch()
    nn = torch.nn

    class TextCNN(nn.Module):
        """Kim (2014): parallel 1-D convolutions (widths 2, 3, 4), max over time."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
            self.convs = nn.ModuleList(
                nn.Conv1d(embed_dim, hidden, k, padding=k // 2) for k in (2, 3, 4)
            )
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(3 * hidden, n_classes)

        def forward(self, ids, lengths):
            mask = (ids != pad_id).unsqueeze(1)  # B,1,T
            x = self.embed(ids).transpose(1, 2)  # B,E,T
            pooled = []
            for conv in self.convs:
                h = torch.relu(conv(x))[:, :, : ids.shape[1]]
                pooled.append(h.masked_fill(~mask, -1e4).amax(dim=2))
            return self.out(self.drop(torch.cat(pooled, dim=1)))

    class RNN(nn.Module):
        """(Bi)LSTM / GRU over packed sequences; max-pool over the valid time steps."""

        def __init__(self, cell):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
            self.rnn = cell(embed_dim, hidden, batch_first=True, bidirectional=bidirectional)
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(hidden * (2 if bidirectional else 1), n_classes)

        def forward(self, ids, lengths):
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

            x = self.drop(self.embed(ids))
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = self.rnn(packed)
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=ids.shape[1])
            mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).unsqueeze(2)
            return self.out(self.drop(h.masked_fill(~mask, -1e4).amax(dim=1)))

    if arch == "textcnn":
        return TextCNN()
    if arch == "lstm":
        return RNN(nn.LSTM)
    if arch == "gru":
        return RNN(nn.GRU)
    raise LmforgeError(f"unknown architecture {arch!r}")


def char_vocabulary(texts, min_freq: int) -> list[str]:
    counts = Counter(ch for t in texts for ch in _norm(t))
    return [ch for ch, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_freq]


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


class NeuralTextClassifier(TextClassifier):
    """Shared training loop, encoding and persistence; subclasses fix the architecture."""

    arch: str = ""
    uses_validation = True
    search_space = {"lr": [1e-3, 2e-3, 5e-3], "dropout": [0.2, 0.4]}

    # -- encoding ----------------------------------------------------------------------------
    def _setup_encoder(self, texts) -> None:
        if self.tokenizer:
            from lmforge.tokenizer.folder import load_tokenizer

            self.tokenizer_ = load_tokenizer(self.tokenizer)
            self.vocab_ = None
            pad = self.tokenizer_.pad_token_id
            self.pad_id_ = int(pad) if pad is not None else 0
            self.vocab_size_ = len(self.tokenizer_)
        else:
            self.tokenizer_ = None
            self.vocab_ = ["<pad>", "<unk>"] + char_vocabulary(texts, self.min_freq)
            self.pad_id_ = PAD
            self.vocab_size_ = len(self.vocab_)

    def _encode(self, texts) -> list[np.ndarray]:
        texts = ["" if t is None else str(t) for t in texts]
        if self.tokenizer_ is not None:
            enc = self.tokenizer_(
                texts, add_special_tokens=False, truncation=True, max_length=self.max_len
            )
            out = [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]
        else:
            index = {ch: i for i, ch in enumerate(self.vocab_)}
            out = [
                np.fromiter((index.get(ch, UNK) for ch in _norm(t)[: self.max_len]), dtype=np.int64)
                for t in texts
            ]
        # an empty text still needs one token so that packing / pooling is defined
        unk = UNK if self.tokenizer_ is None else (self.tokenizer_.unk_token_id or self.pad_id_)
        return [ids if len(ids) else np.asarray([unk], dtype=np.int64) for ids in out]

    def _batches(self, encoded, order):
        torch = _torch()
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            lengths = np.asarray([len(encoded[i]) for i in idx])
            ids = np.full((len(idx), lengths.max()), self.pad_id_, dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : lengths[row]] = encoded[i]
            yield idx, torch.from_numpy(ids), torch.from_numpy(lengths)

    def _bucketed_order(self, encoded, rng) -> np.ndarray:
        """Shuffle, then sort by length within chunks of 50 batches, then shuffle the batches."""
        order = rng.permutation(len(encoded))
        chunk = self.batch_size * 50
        lengths = np.asarray([len(e) for e in encoded])
        parts = [
            c[np.argsort(lengths[c], kind="stable")]
            for c in np.array_split(order, max(1, len(order) // chunk))
        ]
        order = np.concatenate(parts)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])

    # -- sklearn API -------------------------------------------------------------------------
    def fit(self, texts, y, X_val=None, y_val=None):
        torch = _torch()
        texts = list(texts)
        y = np.asarray(y)
        if len(texts) != len(y):
            raise LmforgeError(f"{len(texts)} texts but {len(y)} labels")
        torch.manual_seed(self.random_state)
        rng = np.random.default_rng(self.random_state)
        if X_val is None and self.val_fraction and len(texts) >= 20:
            from sklearn.model_selection import train_test_split

            try:
                texts, X_val, y, y_val = train_test_split(
                    texts,
                    y,
                    test_size=self.val_fraction,
                    stratify=y,
                    random_state=self.random_state,
                )
            except ValueError:  # a class too small to stratify: no early stopping
                X_val = None
        self.classes_ = np.unique(y)
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        targets = torch.tensor([index[c] for c in y.tolist()])
        self._setup_encoder(texts)
        encoded = self._encode(texts)
        self.model_ = build_network(
            self.arch,
            self.vocab_size_,
            len(self.classes_),
            self.embed_dim,
            self.hidden,
            self.dropout,
            self.bidirectional,
            self.pad_id_,
        )
        opt = torch.optim.AdamW(
            self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        early = EarlyStopping(self.patience)
        self.history_ = []
        for epoch in range(self.epochs):
            start = time.perf_counter()
            self.model_.train()
            total = 0.0
            for idx, ids, lengths in self._batches(encoded, self._bucketed_order(encoded, rng)):
                loss = torch.nn.functional.cross_entropy(self.model_(ids, lengths), targets[idx])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model_.parameters(), 1.0)
                opt.step()
                total += float(loss.detach()) * len(idx)
            record = {
                "epoch": epoch + 1,
                "loss": total / len(texts),
                "seconds": time.perf_counter() - start,
            }
            if early.end_epoch(self, record, X_val, y_val):
                break
        early.restore(self.model_)
        self.best_val_macro_f1_ = early.best_score
        return self

    def predict_proba(self, texts) -> np.ndarray:
        torch = _torch()
        self._check_fitted()
        encoded = self._encode(list(texts))
        order = np.argsort([len(e) for e in encoded], kind="stable")
        out = np.zeros((len(encoded), len(self.classes_)), dtype=np.float64)
        self.model_.eval()
        with torch.inference_mode():
            for idx, ids, lengths in self._batches(encoded, order):
                out[idx] = torch.softmax(self.model_(ids, lengths).float(), dim=1).numpy()
        return out

    # -- persistence -------------------------------------------------------------------------
    def _extra_meta(self) -> dict:
        return {
            "network": {"arch": self.arch, "vocab_size": self.vocab_size_, "pad_id": self.pad_id_},
            "char_vocab": self.vocab_,
            "history": getattr(self, "history_", []),
        }

    def _save_weights(self, directory: Path) -> list[str]:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in self.model_.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        files = [WEIGHTS_FILE]
        if self.tokenizer_ is not None:
            self.tokenizer_.save_pretrained(str(directory / TOKENIZER_SUBDIR))
            files += [
                f"{TOKENIZER_SUBDIR}/{p.name}"
                for p in sorted((directory / TOKENIZER_SUBDIR).iterdir())
            ]
        return files

    def _load_weights(self, directory: Path, meta: dict) -> None:
        from safetensors.torch import load_file

        net = meta.get("network") or {}
        if net.get("arch") != self.arch:
            raise LmforgeError(
                f"{directory}: network {net.get('arch')!r} does not match {self.arch!r}"
            )
        self.classes_ = np.asarray(meta["label_names"])
        if (directory / TOKENIZER_SUBDIR).is_dir():
            from lmforge.tokenizer.folder import load_tokenizer

            self.tokenizer_ = load_tokenizer(directory / TOKENIZER_SUBDIR)
            self.vocab_ = None
        else:
            self.tokenizer_ = None
            self.vocab_ = list(meta["char_vocab"])
        self.pad_id_ = int(net["pad_id"])
        self.vocab_size_ = int(net["vocab_size"])
        self.model_ = build_network(
            self.arch,
            self.vocab_size_,
            len(self.classes_),
            self.embed_dim,
            self.hidden,
            self.dropout,
            self.bidirectional,
            self.pad_id_,
        )
        path = directory / WEIGHTS_FILE
        if not path.is_file():
            raise LmforgeError(f"model file not found: {path}")
        self.model_.load_state_dict(load_file(str(path)))
        self.model_.eval()
        self.history_ = meta.get("history", [])


def _init_params(
    self,
    tokenizer,
    embed_dim,
    hidden,
    max_len,
    epochs,
    batch_size,
    lr,
    dropout,
    weight_decay,
    patience,
    val_fraction,
    min_freq,
    bidirectional,
    random_state,
):
    self.tokenizer = tokenizer
    self.embed_dim = embed_dim
    self.hidden = hidden
    self.max_len = max_len
    self.epochs = epochs
    self.batch_size = batch_size
    self.lr = lr
    self.dropout = dropout
    self.weight_decay = weight_decay
    self.patience = patience
    self.val_fraction = val_fraction
    self.min_freq = min_freq
    self.bidirectional = bidirectional
    self.random_state = random_state


@register_model("textcnn")
class TextCNNClassifier(NeuralTextClassifier):
    """TextCNN: embeddings, convolutions of widths 2/3/4 with ``hidden`` filters each, max-pool."""

    arch = "textcnn"

    def __init__(
        self,
        tokenizer=None,
        embed_dim=128,
        hidden=128,
        max_len=256,
        epochs=8,
        batch_size=64,
        lr=2e-3,
        dropout=0.4,
        weight_decay=0.01,
        patience=2,
        val_fraction=0.1,
        min_freq=2,
        bidirectional=False,
        random_state=0,
    ):
        _init_params(
            self,
            tokenizer,
            embed_dim,
            hidden,
            max_len,
            epochs,
            batch_size,
            lr,
            dropout,
            weight_decay,
            patience,
            val_fraction,
            min_freq,
            bidirectional,
            random_state,
        )


@register_model("bilstm")
class BiLSTMClassifier(NeuralTextClassifier):
    """Bidirectional LSTM, max-pooled over time."""

    arch = "lstm"

    def __init__(
        self,
        tokenizer=None,
        embed_dim=128,
        hidden=128,
        max_len=256,
        epochs=8,
        batch_size=64,
        lr=2e-3,
        dropout=0.3,
        weight_decay=0.01,
        patience=2,
        val_fraction=0.1,
        min_freq=2,
        bidirectional=True,
        random_state=0,
    ):
        _init_params(
            self,
            tokenizer,
            embed_dim,
            hidden,
            max_len,
            epochs,
            batch_size,
            lr,
            dropout,
            weight_decay,
            patience,
            val_fraction,
            min_freq,
            bidirectional,
            random_state,
        )


@register_model("gru")
class GRUClassifier(NeuralTextClassifier):
    """GRU (unidirectional by default; ``bidirectional=True`` for a BiGRU), max-pooled over time."""

    arch = "gru"

    def __init__(
        self,
        tokenizer=None,
        embed_dim=128,
        hidden=128,
        max_len=256,
        epochs=8,
        batch_size=64,
        lr=2e-3,
        dropout=0.3,
        weight_decay=0.01,
        patience=2,
        val_fraction=0.1,
        min_freq=2,
        bidirectional=False,
        random_state=0,
    ):
        _init_params(
            self,
            tokenizer,
            embed_dim,
            hidden,
            max_len,
            epochs,
            batch_size,
            lr,
            dropout,
            weight_decay,
            patience,
            val_fraction,
            min_freq,
            bidirectional,
            random_state,
        )
