"""Input and confidence drift against the training data: are today's requests still like the
data the model learnt from?

A *reference profile* (``reference.json`` in the model folder; :func:`build_reference` writes it,
``lmforge registry add --data DATA`` does so for each version) holds, from the training split:
the characters seen (the unit of lmforge's Chinese models; a character never seen in training
is an *unknown token*), the length bins (training deciles) and their shares, and, from the
validation split through the model, the confidence histogram (10 bins on [0, 1]) and the mean
unknown-character share.

:class:`InputDrift` keeps the last ``window`` served texts' (length, unknown share, confidence)
(numbers only, never the text) and sets, at scrape time:

- ``lmforge_input_unknown_char_share{window="recent"|"training"}``;
- ``lmforge_input_length_psi``: population stability index of the recent length bins against
  training (common reading: < 0.1 stable, 0.1-0.25 moving, > 0.25 drifted);
- ``lmforge_confidence_psi``, ``lmforge_confidence_mean{window="recent"|"training"}``.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import prometheus_client as prom

REFERENCE_JSON = "reference.json"
CONFIDENCE_EDGES = [i / 10 for i in range(1, 10)]


def _shares(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return (counts / max(1, counts.sum())).tolist()


def psi(actual: Sequence[float], expected: Sequence[float], eps: float = 1e-4) -> float:
    """Population stability index of two binned distributions (shares)."""
    return float(
        sum(
            (a - e) * math.log((a + eps) / (e + eps)) for a, e in zip(actual, expected, strict=True)
        )
    )


def unknown_share(text: str, vocab: set[str]) -> float:
    return sum(ch not in vocab for ch in text) / len(text) if text else 0.0


def build_reference(model_dir: str | Path, data: str, seed: int = 0, **load_options) -> dict:
    """The reference profile of ``model_dir`` on ``data`` (split with ``seed``); written to
    ``model_dir/reference.json``."""
    from lmforge.classify.data import load_classification_data
    from lmforge.predictor import Predictor

    ds = load_classification_data(data, seed=seed)
    vocab = sorted({ch for t in ds.train_texts for ch in t})
    lengths = [len(t) for t in ds.train_texts]
    edges = sorted(set(np.quantile(lengths, [i / 10 for i in range(1, 10)]).tolist()))
    held_out = ds.val_texts or ds.test_texts
    proba = Predictor.load(model_dir, max_chars=None, **load_options).predict_proba(held_out)
    confidence = proba.max(axis=1).tolist()
    vocab_set = set(vocab)
    reference = {
        "data": data,
        "seed": seed,
        "vocab": "".join(vocab),
        "length_edges": edges,
        "length_shares": _shares(lengths, edges),
        "confidence_shares": _shares(confidence, CONFIDENCE_EDGES),
        "confidence_mean": float(np.mean(confidence)),
        "unknown_char_share": float(np.mean([unknown_share(t, vocab_set) for t in held_out])),
    }
    path = Path(model_dir) / REFERENCE_JSON
    path.write_text(json.dumps(reference, ensure_ascii=False), encoding="utf-8")
    return reference


def read_reference(model_dir: str | Path | None) -> dict | None:
    path = Path(model_dir) / REFERENCE_JSON if model_dir else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


class InputDrift:
    """Recent inputs and confidences against a reference profile, as Prometheus gauges."""

    def __init__(self, registry: prom.CollectorRegistry, window: int = 1000):
        self._recent: deque[tuple[int, float, float]] = deque(maxlen=window)
        self.reference: dict | None = None
        self._vocab: set[str] = set()
        self.unknown = prom.Gauge(
            "lmforge_input_unknown_char_share",
            "share of characters never seen in training: served recent / training reference",
            ["window"],
            registry=registry,
        )
        self.length_psi = prom.Gauge(
            "lmforge_input_length_psi",
            "population stability index of recent input lengths against training",
            registry=registry,
        )
        self.confidence_psi = prom.Gauge(
            "lmforge_confidence_psi",
            "population stability index of recent top-label confidence against validation",
            registry=registry,
        )
        self.confidence_mean = prom.Gauge(
            "lmforge_confidence_mean", "mean top-label confidence", ["window"], registry=registry
        )

    def set_reference(self, reference: dict | None) -> None:
        """A new model (or version): its reference, and a fresh window."""
        self.reference = reference
        self._vocab = set(reference["vocab"]) if reference else set()
        self._recent.clear()
        if reference:
            self.unknown.labels(window="training").set(reference["unknown_char_share"])
            self.confidence_mean.labels(window="training").set(reference["confidence_mean"])

    def observe(self, texts: Sequence[str], confidences: Sequence[float]) -> None:
        if self.reference is None:
            return
        vocab = self._vocab
        for text, conf in zip(texts, confidences, strict=True):
            self._recent.append((len(text), unknown_share(text, vocab), float(conf)))

    def update(self) -> None:
        """Set the gauges from the window (at scrape time, not per request)."""
        ref = self.reference
        if ref is None or not self._recent:
            return
        lengths, unknown, conf = zip(*self._recent, strict=True)
        self.unknown.labels(window="recent").set(float(np.mean(unknown)))
        self.confidence_mean.labels(window="recent").set(float(np.mean(conf)))
        self.length_psi.set(psi(_shares(lengths, ref["length_edges"]), ref["length_shares"]))
        self.confidence_psi.set(psi(_shares(conf, CONFIDENCE_EDGES), ref["confidence_shares"]))
