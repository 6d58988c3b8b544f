"""The one interface every text classifier shares, and the registry of model names.

A :class:`TextClassifier` is a scikit-learn estimator over raw texts: ``fit(texts, y)``,
``predict(texts)``, ``predict_proba(texts)``, ``classes_``, and constructor arguments as its
parameters (so ``clone``, ``cross_val_score``, ``GridSearchCV`` and ``RandomizedSearchCV`` work
on every model). Labels may be strings or integers.

A fitted model saves to a folder::

    DIR/lmforge_model.json    model type, parameters, label names, metrics, anything else given
    DIR/model.skops           scikit-learn models (skops; loaded with an explicit trusted-type list)
    DIR/model.safetensors     torch models (+ their config inside lmforge_model.json)

:func:`load_model` reads the JSON, looks the type up in :data:`MODELS` and lets the class read
its weights. Nothing is ever unpickled.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from lmforge.errors import LmforgeError

MODEL_JSON = "lmforge_model.json"
FORMAT_VERSION = 1

#: name -> class, filled by :func:`register_model` when a model module is imported.
MODELS: dict[str, type[TextClassifier]] = {}

# Modules that register models; imported on first lookup.
MODEL_MODULES = [
    "lmforge.classify.classical",
    "lmforge.classify.neural",
    "lmforge.classify.transformer",
    "lmforge.classify.ensemble",
]


def register_model(name: str):
    """Class decorator: make a :class:`TextClassifier` reachable as ``name``."""

    def wrap(cls):
        cls.model_type = name
        MODELS[name] = cls
        return cls

    return wrap


def _import_model_modules() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)


def available_models() -> list[str]:
    """Every model name that ``classify train`` can fit from texts (not the ensemble, which
    combines folders that are already trained)."""
    _import_model_modules()
    return sorted(name for name, cls in MODELS.items() if cls.trains_from_texts)


def get_model_class(name: str) -> type[TextClassifier]:
    if name not in MODELS:
        _import_model_modules()
    if name not in MODELS:
        raise LmforgeError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def parse_value(text: str) -> Any:
    """A spec or `-p key=value` value: None, a bool, an int, a float, else the string."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"svm:features=char:C=0.5"`` -> ``("svm", {"features": "char", "C": 0.5})``."""
    name, *pairs = spec.strip().split(":")
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise LmforgeError(f"model spec {spec!r}: {pair!r} is not key=value")
        key, value = pair.split("=", 1)
        params[key.strip()] = parse_value(value)
    return name.strip(), params


def make_model(spec: str, **overrides) -> TextClassifier:
    """Build an unfitted model from a spec (``name[:key=value...]``) plus keyword overrides."""
    name, params = parse_model_spec(spec)
    cls = get_model_class(name)
    params.update(overrides)
    valid = cls._get_param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise LmforgeError(f"model {name!r} has no parameter(s) {unknown}; it has {valid}")
    return cls(**params)


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Base class: a scikit-learn classifier over a list of raw texts.

    Subclasses implement ``fit``, ``predict_proba``, ``_save_weights(dir) -> list[str]`` and
    ``_load_weights(dir, meta)``, and declare ``search_space`` (grid over parameters, used by
    ``search(kind="grid")``) and optionally ``random_space`` (scipy distributions or lists, used
    by ``search(kind="random")``; default: ``search_space``).
    """

    model_type: ClassVar[str] = ""
    trains_from_texts: ClassVar[bool] = True
    search_space: ClassVar[dict[str, list]] = {}
    random_space: ClassVar[dict[str, Any] | None] = None

    # -- sklearn API -------------------------------------------------------------------------
    def fit(self, texts, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, texts) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, texts) -> np.ndarray:
        proba = self.predict_proba(texts)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise LmforgeError(f"{type(self).__name__} is not fitted yet: call fit first")

    # -- persistence -------------------------------------------------------------------------
    def json_params(self) -> dict[str, Any]:
        """Constructor parameters as JSON values."""
        out = {}
        for key, value in self.get_params(deep=False).items():
            if isinstance(value, tuple):
                value = list(value)
            if isinstance(value, np.generic):
                value = value.item()
            out[key] = value
        return out

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write weights + ``lmforge_model.json`` (type, params, label names, ``extra``)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = self._save_weights(directory)
        meta = {
            "format_version": FORMAT_VERSION,
            "model_type": self.model_type,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self.json_params(),
            "label_names": [_jsonable(c) for c in self.classes_],
            "files": files,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        meta.update(self._extra_meta())
        if extra:
            meta.update(extra)
        (directory / MODEL_JSON).write_text(
            json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TextClassifier:
        """Load a saved model folder (any registered type when called on the base class)."""
        return load_model(directory)

    def _save_weights(self, directory: Path) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_weights(self, directory: Path, meta: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _extra_meta(self) -> dict:
        return {}


def _jsonable(value):
    return value.item() if isinstance(value, np.generic) else value


def read_model_meta(directory: str | Path) -> dict:
    path = Path(directory) / MODEL_JSON
    if not path.is_file():
        raise LmforgeError(f"{directory}: not a model folder (no {MODEL_JSON})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LmforgeError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc


def load_model(directory: str | Path) -> TextClassifier:
    """Rebuild a fitted model from a folder written by :meth:`TextClassifier.save`."""
    directory = Path(directory)
    meta = read_model_meta(directory)
    cls = get_model_class(meta.get("model_type", ""))
    params = dict(meta.get("params", {}))
    valid = set(cls._get_param_names())
    model = cls(**{k: v for k, v in params.items() if k in valid})
    model._load_weights(directory, meta)
    return model


def model_size_bytes(directory: str | Path) -> int:
    """Bytes on disk of a saved model's weight files (the ``files`` in its JSON) + the JSON."""
    directory = Path(directory)
    meta = read_model_meta(directory)
    names = list(meta.get("files", [])) + [MODEL_JSON]
    return sum((directory / n).stat().st_size for n in names if (directory / n).is_file())
