"""Neural baselines in PyTorch behind the shared estimator interface: TextCNN, BiLSTM, GRU.

Tokens come from a tokenizer folder (``tokenizer=DIR``: any folder that
``transformers.AutoTokenizer.from_pretrained`` loads, e.g. one written by
``lmforge.tokenizer.train.train_tokenizer``), or -- with ``tokenizer=None`` -- from a character
vocabulary built in ``fit`` (NFKC, lower-cased characters seen at least ``min_freq`` times;
ids 0 = pad, 1 = unknown).

Training (:class:`~lmforge.classify.torch_classifier.TorchTextClassifier`, through
:func:`lmforge.training.fit`): AdamW (no decay on biases), constant lr, cross-entropy,
length-bucketed batches, early stopping on validation macro-F1 (the ``X_val``/``y_val`` passed
to ``fit``, else ``val_fraction`` of the training data held out, stratified), the best epoch's
weights kept. ``device``: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.

Saved as ``model.safetensors``; the
architecture, vocabulary and label names live in ``lmforge_model.json``; a tokenizer folder is
copied to ``DIR/tokenizer``.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from lmforge.classify.estimator import register_model
from lmforge.classify.torch_classifier import TorchTextClassifier
from lmforge.errors import LmforgeError

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_SUBDIR = "tokenizer"
PAD, UNK = 0, 1


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
            mask = (
                torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
            ).unsqueeze(2)
            return self.out(self.drop(h.masked_fill(~mask, -1e4).amax(dim=1)))

    if arch == "textcnn":
        return TextCNN()
    if arch == "lstm":
        return RNN(nn.LSTM)
    if arch == "gru":
        return RNN(nn.GRU)
    raise LmforgeError(f"unknown architecture {arch!r}")


def char_vocabulary(texts, min_freq: int) -> list[str]:
    counts = Counter(ch for t in texts for ch in normalize_chars(t))
    return [ch for ch, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_freq]


def normalize_chars(text: str) -> str:
    """What the character vocabulary sees: NFKC, lower case."""
    return unicodedata.normalize("NFKC", text).lower()


class NeuralTextClassifier(TorchTextClassifier):
    """Encoding, the network and persistence; subclasses fix the architecture."""

    arch: str = ""
    input_kind = "lengths"
    search_space = {"lr": [1e-3, 2e-3, 5e-3], "dropout": [0.2, 0.4]}

    # -- encoding ----------------------------------------------------------------------------
    def prepare_encoder(self, texts) -> None:
        """The tokenizer folder (``tokenizer=DIR``) or a character vocabulary of ``texts``."""
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

    def encode(self, texts) -> list[np.ndarray]:
        texts = ["" if t is None else str(t) for t in texts]
        if self.tokenizer_ is not None:
            enc = self.tokenizer_(
                texts, add_special_tokens=False, truncation=True, max_length=self.max_len
            )
            out = [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]
        else:
            index = {ch: i for i, ch in enumerate(self.vocab_)}
            out = [
                np.fromiter(
                    (index.get(ch, UNK) for ch in normalize_chars(t)[: self.max_len]),
                    dtype=np.int64,
                )
                for t in texts
            ]
        # an empty text still needs one token so that packing / pooling is defined
        unk = UNK if self.tokenizer_ is None else (self.tokenizer_.unk_token_id or self.pad_id_)
        return [ids if len(ids) else np.asarray([unk], dtype=np.int64) for ids in out]

    def build_network(self):
        return build_network(
            self.arch,
            self.vocab_size_,
            len(self.classes_),
            self.embed_dim,
            self.hidden,
            self.dropout,
            self.bidirectional,
            self.pad_id_,
        )

    def init_model(self, texts) -> None:
        self.prepare_encoder(texts)
        self.model_ = self.build_network()

    def forward(self, batch):
        return self.model_(batch.inputs["ids"], batch.inputs["lengths"])

    # -- persistence -------------------------------------------------------------------------
    def _extra_meta(self) -> dict:
        return {
            "network": {"arch": self.arch, "vocab_size": self.vocab_size_, "pad_id": self.pad_id_},
            "char_vocab": self.vocab_,
            "history": getattr(self, "history_", []),
        }

    def _save_weights(self, directory: Path) -> list[str]:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
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
        self.model_ = self.build_network()
        path = directory / WEIGHTS_FILE
        if not path.is_file():
            raise LmforgeError(f"model file not found: {path}")
        self.model_.load_state_dict(load_file(str(path)))
        self.model_.eval()
        self.to_device()
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
    device,
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
    self.device = device


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
        device="auto",
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
            device,
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
        device="auto",
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
            device,
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
        device="auto",
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
            device,
        )
