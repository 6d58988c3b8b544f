"""Predictor backends for compressed folders: ONNX Runtime and TorchScript.

Imported by :func:`lmforge.predictor.get_backend` on the first lookup of a name it does not
know. Each reads the folder's input spec (:mod:`lmforge.compress.inputs`), encodes a batch of
texts into the network's two inputs and returns softmax probabilities, columns in
``label_names`` order.

- ``onnx``: ``onnxruntime.InferenceSession`` on ``model.onnx`` (fp32 or int8); the CUDA
  provider first when onnxruntime-gpu offers it, else CPU. Options: ``threads`` (intra-op
  threads; 0 = ONNX Runtime's default), ``providers`` (a list, to force one).
- ``torchscript``: ``torch.jit.load`` of ``model.ts.pt`` (fp32 or dynamic int8). TorchScript
  archives run the code they hold (at load and at every call), so this backend says
  ``runs_code = True`` and the Predictor loads it only with ``trust_model_code=True``.
  Option: ``threads`` (``torch.set_num_threads``).

ONNX runs no code from the folder: the graph holds only standard operators (a custom-op library
would have to be registered by the caller; this backend registers none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmforge.compress.export import (
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    onnx_logits_fn,
    onnx_session,
    torch_logits_fn,
)
from lmforge.compress.inputs import make_inputs, softmax
from lmforge.errors import LmforgeError
from lmforge.predictor import register_backend


def _model_file(directory: Path, meta: dict, default: str) -> Path:
    name = meta.get("model_file") or default
    path = directory / name
    if not path.is_file():
        raise LmforgeError(f"model file not found: {path}")
    return path


def _spec(directory: Path, meta: dict) -> dict:
    spec = meta.get("inputs")
    if not spec:
        raise LmforgeError(f"{directory}: lmforge_model.json has no 'inputs' spec")
    return spec


class _ExportedNetwork:
    """What both backends share once built: ``encode`` (texts -> feeds), ``run`` (feeds ->
    logits) and ``labels``."""

    encode: Any
    run: Any
    labels: list[str]

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.run(self.encode(texts))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return softmax(self.logits(texts))


@register_backend("onnx")
class OnnxBackend(_ExportedNetwork):
    """ONNX Runtime (CPU provider; CUDA provider when present)."""

    runs_code = False

    def __init__(
        self, directory: Path, meta: dict, threads: int = 0, providers: list[str] | None = None
    ):
        self.session = onnx_session(_model_file(directory, meta, ONNX_FILE), threads, providers)
        self.providers = self.session.get_providers()
        self.encode = make_inputs(directory, _spec(directory, meta))
        self.run = onnx_logits_fn(self.session)
        self.labels = [str(x) for x in meta["label_names"]]


@register_backend("torchscript")
class TorchScriptBackend(_ExportedNetwork):
    """A traced (optionally dynamic-int8) network saved with ``torch.jit.save``."""

    runs_code = True  # an archive is a program: Predictor.load asks for trust_model_code

    def __init__(self, directory: Path, meta: dict, threads: int = 0, **options: Any):
        if options:
            raise LmforgeError(f"backend 'torchscript' takes only threads, got {sorted(options)}")
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        path = _model_file(directory, meta, TORCHSCRIPT_FILE)
        self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.encode = make_inputs(directory, _spec(directory, meta))
        self.run = torch_logits_fn(self.module)
        self.labels = [str(x) for x in meta["label_names"]]
