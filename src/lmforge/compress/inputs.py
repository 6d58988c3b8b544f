"""Texts → the numpy arrays a classifier network takes, outside the estimator classes.

An exported folder carries an *input spec* in its ``lmforge_model.json`` (``"inputs"``):

- ``{"kind": "transformer", "max_len": N}``: the folder's tokenizer (HF), truncation at ``N``,
  padding to the longest text of the batch → ``input_ids``, ``attention_mask``;
- ``{"kind": "neural", "model_type": ..., "params": ..., "char_vocab": ..., "pad_id": ...}``:
  exactly :meth:`lmforge.classify.neural.NeuralTextClassifier.encode` (characters or
  ``DIR/tokenizer``) → ``ids``, ``lengths``.

The encodings match what the PyTorch estimators feed their own networks, so an ONNX or
TorchScript variant sees the same numbers as the model it came from (the export parity check
measures it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError

NEURAL_TYPES = ("textcnn", "bilstm", "gru")
INPUT_NAMES = {"transformer": ("input_ids", "attention_mask"), "neural": ("ids", "lengths")}


def input_spec(meta: dict, model=None) -> dict:
    """The input spec of a native torch classifier folder (its ``lmforge_model.json``)."""
    model_type = meta.get("model_type")
    params = dict(meta.get("params") or {})
    if model_type == "transformer":
        max_len = int(params.get("max_len") or 128)
        if model is not None:
            positions = getattr(model.model_.config, "max_position_embeddings", None)
            if positions:
                max_len = min(max_len, int(positions))
        return {"kind": "transformer", "max_len": max_len}
    if model_type in NEURAL_TYPES:
        net = meta.get("network") or {}
        return {
            "kind": "neural",
            "model_type": model_type,
            "params": params,
            "char_vocab": meta.get("char_vocab"),
            "pad_id": int(net.get("pad_id", 0)),
            "vocab_size": int(net.get("vocab_size", 0)),
        }
    raise LmforgeError(
        f"model type {model_type!r} has no network to export or compress; "
        f"use a transformer, textcnn, bilstm or gru folder"
    )


class TransformerInputs:
    """``tokenizer.json`` through the ``tokenizers`` library when the folder has one (no torch /
    transformers import: an ONNX variant loads fast and small), else ``AutoTokenizer``."""

    names = INPUT_NAMES["transformer"]

    def __init__(self, directory: Path, spec: dict):
        self.max_len = int(spec["max_len"])
        self.fast = None
        if (directory / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            fast = Tokenizer.from_file(str(directory / "tokenizer.json"))
            pad = spec.get("pad_token") or _pad_token(directory)
            pad_id = fast.token_to_id(pad)
            if pad_id is not None and fast.post_processor is not None:
                fast.enable_truncation(self.max_len)
                fast.enable_padding(pad_id=pad_id, pad_token=pad)
                self.fast = fast
        if self.fast is None:
            from lmforge.tokenizer.folder import load_tokenizer

            self.tokenizer = load_tokenizer(directory)

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        texts = ["" if t is None else str(t) for t in texts]
        if self.fast is not None:
            encs = self.fast.encode_batch(texts)
            return {
                "input_ids": np.asarray([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64),
            }
        enc = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_len,
            padding=True,
            return_tensors="np",
        )
        return {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64),
        }


class NeuralInputs:
    names = INPUT_NAMES["neural"]

    def __init__(self, directory: Path, spec: dict):
        from lmforge.classify.estimator import get_model_class
        from lmforge.classify.neural import TOKENIZER_SUBDIR

        cls = get_model_class(spec["model_type"])
        valid = set(cls._get_param_names())
        est = cls(**{k: v for k, v in spec["params"].items() if k in valid})
        if (directory / TOKENIZER_SUBDIR).is_dir():
            from lmforge.tokenizer.folder import load_tokenizer

            est.tokenizer_, est.vocab_ = load_tokenizer(directory / TOKENIZER_SUBDIR), None
        else:
            if not spec.get("char_vocab"):
                raise LmforgeError(f"{directory}: neither a tokenizer/ folder nor a char_vocab")
            est.tokenizer_, est.vocab_ = None, list(spec["char_vocab"])
        est.pad_id_ = int(spec["pad_id"])
        self.estimator = est
        # the character path of NeuralTextClassifier.encode, with the index built once
        self.index = {ch: i for i, ch in enumerate(est.vocab_)} if est.vocab_ else None

    def _encode_chars(self, texts: list[str]) -> list[np.ndarray]:
        from lmforge.classify.neural import UNK, normalize_chars

        get, limit = self.index.get, int(self.estimator.max_len)
        out = []
        for t in texts:
            ids = [get(ch, UNK) for ch in normalize_chars("" if t is None else str(t))[:limit]]
            out.append(np.asarray(ids or [UNK], dtype=np.int64))
        return out

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.index is not None:
            encoded = self._encode_chars(texts)
        else:
            encoded = self.estimator.encode(texts)
        lengths = np.asarray([len(e) for e in encoded], dtype=np.int64)
        ids = np.full((len(encoded), int(lengths.max())), self.estimator.pad_id_, dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
        return {"ids": ids, "lengths": lengths}


def _pad_token(directory: Path) -> str:
    import json

    path = directory / "tokenizer_config.json"
    if path.is_file():
        pad = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if pad:
            return str(pad)
    return "[PAD]"


def make_inputs(directory: str | Path, spec: dict):
    """The encoder of an input spec; ``directory`` holds the tokenizer files (if any)."""
    kind = spec.get("kind")
    if kind == "transformer":
        return TransformerInputs(Path(directory), spec)
    if kind == "neural":
        return NeuralInputs(Path(directory), spec)
    raise LmforgeError(f"{directory}: unknown input kind {kind!r}")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
