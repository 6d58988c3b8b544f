"""Variant folders: what every compression step writes, and how it reads its source model.

A variant folder is a Predictor-loadable classifier folder::

    DIR/lmforge_model.json   backend, model_type, label_names, inputs (spec), files, metrics,
                             source (what it was made from), step details (parity, sparsity...)
    DIR/model.onnx | model.ts.pt | model.safetensors ...
    DIR/tokenizer.json ...   (transformers) or DIR/tokenizer/ (neural models with a tokenizer)
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from lmforge.classify.estimator import (
    FORMAT_VERSION,
    MODEL_JSON,
    load_model,
    model_size_bytes,
    read_model_meta,
)
from lmforge.compress.inputs import input_spec
from lmforge.errors import LmforgeError
from lmforge.tokenizer.folder import ALL_TOKENIZER_FILES


def has_tokenizer(directory: Path) -> bool:
    return any((directory / n).is_file() for n in ("tokenizer.json", "vocab.txt", "vocab.json"))


def prepare_source(model_dir: str | Path, out_dir: Path, tokenizer: str | Path | None) -> Path:
    """A usable copy of the source folder under ``out_dir``: weights, JSON and tokenizer.

    A transformer folder whose tokenizer files are missing gets them from ``tokenizer``; the
    original folder is never written to.
    """
    src = Path(model_dir)
    if not src.is_dir():
        raise LmforgeError(f"model folder not found: {src}")
    meta = read_model_meta(src)
    needs_tok = meta.get("model_type") == "transformer" and not has_tokenizer(src)
    if not needs_tok and tokenizer is None:
        return src
    if needs_tok and tokenizer is None:
        raise LmforgeError(
            f"{src}: the transformer folder has no tokenizer files; pass --tokenizer DIR "
            "(the pretraining folder it was fine-tuned from)"
        )
    tok = Path(tokenizer)
    if not has_tokenizer(tok):
        raise LmforgeError(f"--tokenizer {tok}: no tokenizer.json / vocab.txt there")
    dst = out_dir / "source"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in [*meta.get("files", []), MODEL_JSON]:
        if (src / name).is_file() and name not in ALL_TOKENIZER_FILES:
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
    for name in ALL_TOKENIZER_FILES:
        if (tok / name).is_file():
            shutil.copy2(tok / name, dst / name)
    meta["files"] = sorted(
        {*(n for n in meta.get("files", []) if (dst / n).is_file()), *_root_tokenizer(dst)}
    )
    (dst / MODEL_JSON).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return dst


def _root_tokenizer(directory: Path) -> list[str]:
    return [n for n in ALL_TOKENIZER_FILES if (directory / n).is_file()]


def load_torch_classifier(model_dir: str | Path):
    """(fitted estimator, its meta, its input spec) of a native torch classifier folder."""
    model_dir = Path(model_dir)
    meta = read_model_meta(model_dir)
    if meta.get("backend", "native") != "native":
        raise LmforgeError(
            f"{model_dir}: a {meta['backend']!r} folder; compress steps need a PyTorch one "
            "(transformer, textcnn, bilstm, gru)"
        )
    input_spec(meta)  # raises for classical models before loading anything
    model = load_model(model_dir)
    return model, meta, input_spec(meta, model)


def logits_module(model, spec: dict):
    """An ``nn.Module`` mapping the spec's two input tensors to logits (what gets exported)."""
    import torch

    class TransformerLogits(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, input_ids, attention_mask):
            return self.net(input_ids=input_ids, attention_mask=attention_mask).logits

    class NeuralLogits(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, ids, lengths):
            return self.net(ids, lengths)

    wrapper = TransformerLogits if spec["kind"] == "transformer" else NeuralLogits
    return wrapper(model.model_).eval()


def write_variant(
    out_dir: str | Path,
    source_dir: str | Path,
    source_meta: dict,
    spec: dict,
    backend: str,
    model_files: list[str],
    extra: dict | None = None,
) -> Path:
    """Copy the source's tokenizer next to ``model_files`` and write ``lmforge_model.json``."""
    out_dir, source_dir = Path(out_dir), Path(source_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = list(model_files)
    if spec["kind"] == "transformer":
        for name in _root_tokenizer(source_dir):
            shutil.copy2(source_dir / name, out_dir / name)
            files.append(name)
    elif (source_dir / "tokenizer").is_dir():
        shutil.copytree(source_dir / "tokenizer", out_dir / "tokenizer", dirs_exist_ok=True)
        files += [f"tokenizer/{p.name}" for p in sorted((out_dir / "tokenizer").iterdir())]
    meta = {
        "format_version": FORMAT_VERSION,
        "model_type": source_meta.get("model_type"),
        "backend": backend,
        "name": out_dir.name,
        "label_names": [str(x) for x in source_meta["label_names"]],
        "inputs": spec,
        "files": files,
        "source": {
            "dir": str(source_dir),
            "model_type": source_meta.get("model_type"),
            "backend": source_meta.get("backend", "native"),
        },
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    meta.update(extra or {})
    write_meta(out_dir, meta)
    return out_dir


def write_meta(directory: Path, meta: dict) -> None:
    (Path(directory) / MODEL_JSON).write_text(
        json.dumps(meta, ensure_ascii=False, indent=2, default=_plain), encoding="utf-8"
    )


def update_meta(directory: str | Path, **fields) -> dict:
    meta = read_model_meta(directory)
    meta.update(fields)
    write_meta(Path(directory), meta)
    return meta


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def evaluate_folder(directory: str | Path, texts, labels, **load_options) -> dict:
    """Accuracy / macro-F1 of a folder through the Predictor; stored as ``metrics.test``."""
    from lmforge.classify.metrics import classification_metrics
    from lmforge.predictor import Predictor

    # only ever called on a variant `lmforge compress` has just written: its TorchScript is ours
    load_options.setdefault("trust_model_code", True)
    predictor = Predictor.load(directory, **load_options)
    proba = predictor.predict_proba(list(texts))
    pred = np.asarray(predictor.labels)[np.argmax(proba, axis=1)]
    m = classification_metrics(
        np.asarray(labels).astype(str), pred, [str(x) for x in predictor.labels]
    )
    m = {k: m[k] for k in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "n")}
    meta = read_model_meta(directory)
    metrics = dict(meta.get("metrics") or {})
    metrics["test"] = m
    update_meta(directory, metrics=metrics)
    return m


def size_bytes(directory: str | Path) -> int:
    return model_size_bytes(directory)
