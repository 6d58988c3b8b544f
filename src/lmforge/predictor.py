"""One way to run any lmforge classifier folder: :class:`Predictor`.

``Predictor.load(DIR)`` reads ``DIR/lmforge_model.json`` and picks a *backend* that can run the
folder's weights:

- ``native``: the model class itself (:func:`lmforge.classify.estimator.load_model`) — every
  scikit-learn, PyTorch and transformer classifier lmforge trains;
- further backends (ONNX Runtime, TorchScript, ...) register themselves in :data:`BACKENDS`
  with :func:`register_backend`; a folder names the one it needs in its JSON (``"backend"``).

A backend whose folders hold code that runs when loaded (TorchScript) says ``runs_code = True``;
the Predictor loads such a folder only when its *caller* passes ``trust_model_code=True``
(``--trust-model-code`` on the command line): the folder's JSON picks the backend, so the
folder must never be what decides that its code runs.

Whatever the backend, the Predictor does the same around it: texts longer than ``max_chars``
are cut explicitly (and flagged ``truncated`` in the answer, never silently), texts are sorted
by length and run in batches of ``batch_size`` so a batch pads little, and the answers come back
in input order with the label names the model was trained with.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from lmforge.classify.estimator import MODEL_JSON, load_model, model_size_bytes, read_model_meta
from lmforge.errors import LmforgeError

#: name -> backend class; filled by :func:`register_backend`.
BACKENDS: dict[str, type[Backend]] = {}

# Modules that register more backends; imported on first lookup, skipped when absent.
BACKEND_MODULES = ["lmforge.compress.backends"]

DEFAULT_MAX_CHARS = 2000

#: a run folder (``runs/<name>/``) keeps the model it serves here (``lmforge run`` writes it)
SERVING_DIR = "serving"


def resolve_model_dir(directory: str | Path) -> Path:
    """A model folder as given, or, for a run folder, the model it serves (``<run>/serving/``)."""
    directory = Path(directory)
    served = directory / SERVING_DIR
    if not (directory / MODEL_JSON).is_file() and (served / MODEL_JSON).is_file():
        return served
    return directory


class Backend(Protocol):
    """Runs one model folder: probabilities for a batch of texts, columns in ``labels`` order."""

    name: ClassVar[str]
    labels: list[str]
    #: True when loading or running a folder executes code stored in it (see trust_model_code)
    runs_code: ClassVar[bool]

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


def register_backend(name: str):
    """Class decorator: ``cls(directory, meta, **options)`` runs folders whose JSON says ``name``."""

    def wrap(cls):
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return wrap


def _import_backend_modules() -> None:
    for module in BACKEND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise


class UntrustedModelError(LmforgeError):
    """A folder whose backend runs the code it holds, loaded without ``trust_model_code``."""


def check_trusted(directory: Path, backend: str, trust_model_code: bool) -> None:
    """Raise :class:`UntrustedModelError` unless ``backend`` runs no code or the caller trusts."""
    if getattr(get_backend(backend), "runs_code", False) and not trust_model_code:
        raise UntrustedModelError(
            f"{directory}: a {backend!r} model folder runs the code stored in it when loaded; "
            "load it only if you trust whoever made it: pass --trust-model-code "
            "(Predictor.load(..., trust_model_code=True))"
        )


def get_backend(name: str) -> type[Backend]:
    if name not in BACKENDS:
        _import_backend_modules()
    if name not in BACKENDS:
        raise LmforgeError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


@register_backend("native")
class NativeBackend:
    """The model's own class: scikit-learn pipelines, TextCNN/BiLSTM/GRU, transformers."""

    runs_code = False  # safetensors, JSON and skops with an explicit trusted-type list

    def __init__(self, directory: Path, meta: dict, device: str | None = None, **options: Any):
        if options:
            raise LmforgeError(f"backend 'native' takes no options, got {sorted(options)}")
        self.model = load_model(directory)
        if device is not None:  # torch models: auto | cpu | cuda (default: the model's own)
            if not hasattr(self.model, "to_device"):
                raise LmforgeError(
                    f"device={device!r}: {meta.get('model_type')} is not a torch model"
                )
            self.model.to_device(device)
        self.labels = [str(c) for c in self.model.classes_.tolist()]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.predict_proba(texts), dtype=np.float64)


@dataclass
class Prediction:
    """One text's answer."""

    label: str
    score: float
    probabilities: dict[str, float] = field(default_factory=dict)
    truncated: bool = False

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "score": self.score,
            "probabilities": self.probabilities,
            "truncated": self.truncated,
        }


class Predictor:
    """Load a classifier folder once, then ``predict(texts)`` as often as you like.

    >>> p = Predictor.load("runs/default/classify/nb")          # doctest: +SKIP
    >>> p.predict(["质量很好，物流也快"])[0].label                 # doctest: +SKIP
    'pos'
    """

    def __init__(
        self,
        backend: Backend,
        meta: dict,
        directory: Path,
        batch_size: int = 32,
        max_chars: int | None = DEFAULT_MAX_CHARS,
        load_seconds: float = 0.0,
    ):
        if batch_size < 1:
            raise LmforgeError(f"batch_size must be ≥ 1, got {batch_size}")
        if max_chars is not None and max_chars < 1:
            raise LmforgeError(f"max_chars must be ≥ 1 or None, got {max_chars}")
        self.backend = backend
        self.meta = meta
        self.directory = directory
        self.batch_size = int(batch_size)
        self.max_chars = max_chars
        self.load_seconds = load_seconds
        self.labels: list[str] = list(backend.labels)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        backend: str | None = None,
        batch_size: int = 32,
        max_chars: int | None = DEFAULT_MAX_CHARS,
        trust_model_code: bool = False,
        **options: Any,
    ) -> Predictor:
        """``backend=None`` takes the folder's own (``"backend"`` in its JSON, else native).

        ``trust_model_code=True`` allows backends that execute code stored in the folder
        (TorchScript); without it such a folder raises :class:`UntrustedModelError`."""
        directory = resolve_model_dir(directory)
        if not directory.is_dir():
            raise LmforgeError(f"model folder not found: {directory}")
        meta = read_model_meta(directory)
        name = backend or meta.get("backend") or "native"
        check_trusted(directory, name, trust_model_code)
        start = time.perf_counter()
        runner = get_backend(name)(directory, meta, **options)
        return cls(
            runner,
            meta,
            directory,
            batch_size=batch_size,
            max_chars=max_chars,
            load_seconds=time.perf_counter() - start,
        )

    # -- what the folder says about itself ---------------------------------------------------
    @property
    def backend_name(self) -> str:
        return type(self.backend).name

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.meta.get("spec") or self.directory.name)

    @property
    def version(self) -> str:
        return str(self.meta.get("version") or self.meta.get("saved_at") or "")

    @property
    def model_type(self) -> str:
        return str(self.meta.get("model_type", ""))

    @property
    def classes_(self) -> np.ndarray:
        """:attr:`labels` under scikit-learn's name: code written for estimators (evaluation)
        takes a Predictor as it is."""
        return np.asarray(self.labels)

    @property
    def test_metrics(self) -> dict | None:
        return (self.meta.get("metrics") or {}).get("test")

    def size_bytes(self) -> int:
        return model_size_bytes(self.directory)

    def info(self) -> dict:
        """Name, version, backend, labels and test metrics: what ``/v1/models`` shows."""
        metrics = self.test_metrics or {}
        return {
            "name": self.name,
            "version": self.version,
            "model_type": self.model_type,
            "backend": self.backend_name,
            "labels": self.labels,
            "size_bytes": self.size_bytes(),
            "test_metrics": {k: metrics[k] for k in ("accuracy", "macro_f1", "n") if k in metrics},
        }

    # -- prediction --------------------------------------------------------------------------
    def _clip(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        out, cut = [], np.zeros(len(texts), dtype=bool)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise LmforgeError(f"text {i} is {type(text).__name__}, not a string")
            if self.max_chars is not None and len(text) > self.max_chars:
                text, cut[i] = text[: self.max_chars], True
            out.append(text)
        return out, cut

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, one row per text (input order), columns in :attr:`labels` order."""
        clipped, _ = self._clip(texts)
        return self._run(clipped)

    def _run(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return out
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self.backend.predict_proba([texts[i] for i in idx])
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Label, its probability, every label's probability and the truncation flag per text."""
        clipped, cut = self._clip(texts)
        proba = self._run(clipped)
        answers = []
        for row, was_cut in zip(proba, cut, strict=True):
            best = int(np.argmax(row))
            answers.append(
                Prediction(
                    label=self.labels[best],
                    score=float(row[best]),
                    probabilities={
                        name: float(p) for name, p in zip(self.labels, row, strict=True)
                    },
                    truncated=bool(was_cut),
                )
            )
        return answers

    def warmup(self, texts: Sequence[str] = ("预热", "warm up the model once")) -> float:
        """Run one batch so the first real request does not pay for lazy init; seconds taken."""
        start = time.perf_counter()
        self.predict(list(texts))
        return time.perf_counter() - start
