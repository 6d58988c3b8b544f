"""Prometheus metrics of one served model, on the app's own :class:`CollectorRegistry`.

Each app gets a fresh registry (tests build many apps in one process; with ``--workers N``
each worker process exposes its own). What is measured:

- ``lmforge_requests_total`` / ``lmforge_request_seconds``: by route template, method, status;
- ``lmforge_queue_wait_seconds``, ``lmforge_batch_size`` (texts per model call),
  ``lmforge_batch_seconds``, ``lmforge_queue_depth``, ``lmforge_inflight_requests``;
- ``lmforge_predictions_total{label}``, ``lmforge_input_chars``, ``lmforge_truncated_total``;
- ``lmforge_model_load_seconds``, ``lmforge_model_warmup_seconds``, ``lmforge_model_info``;
- ``lmforge_label_drift{window}``: Jensen–Shannon distance (base 2: 0 = same, 1 = disjoint)
  between the served label distribution (``all`` since start, ``recent`` last N predictions)
  and the training one; ``lmforge_label_share{label,window}`` shows the distributions;
- ``lmforge_prediction_log_rows_total{outcome}``: rows written / dropped / expired (retention)
  by the prediction log.

The training label distribution comes from the model folder's JSON (see
:func:`training_label_distribution`).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence

import prometheus_client as prom

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CHAR_BUCKETS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def training_label_distribution(meta: dict, labels: Sequence[str]) -> tuple[dict[str, float], str]:
    """(label -> share of the training data, where that came from).

    In order: an explicit ``label_distribution`` (or ``data.label_counts``) in the folder's
    JSON; else the per-class ``support`` of the test metrics (lmforge's splits are stratified,
    so the test split has the training split's label shares to within a row per class); else
    the validation metrics; else uniform.
    """
    candidates = [
        ("label_distribution", meta.get("label_distribution")),
        ("data.label_counts", (meta.get("data") or {}).get("label_counts")),
    ]
    for split in ("test", "val"):
        per_class = ((meta.get("metrics") or {}).get(split) or {}).get("per_class") or {}
        support = {k: v.get("support") for k, v in per_class.items() if isinstance(v, dict)}
        candidates.append((f"metrics.{split}.per_class.support", support))
    for source, counts in candidates:
        if not isinstance(counts, dict):
            continue
        values = {str(k): float(v) for k, v in counts.items() if isinstance(v, int | float)}
        total = sum(values.get(label, 0.0) for label in labels)
        if total > 0 and all(label in values for label in labels):
            return {label: values[label] / total for label in labels}, source
    return {label: 1.0 / len(labels) for label in labels}, "uniform (nothing in the model folder)"


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen–Shannon distance, base 2, between two distributions over the same labels."""
    sp, sq = sum(p), sum(q)
    if sp <= 0 or sq <= 0:
        return 0.0
    p = [x / sp for x in p]
    q = [x / sq for x in q]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(a, b):
        return sum(x * math.log2(x / y) for x, y in zip(a, b, strict=True) if x > 0)

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


class LabelDrift:
    """Served label counts since start and over the last ``window`` predictions.

    Both counts are kept up to date one prediction at a time (the label leaving the window is
    subtracted), so adding is O(1) and reading is O(labels): counting the window afresh on
    every request cost a third of a request's CPU in the serving benchmark.
    """

    def __init__(self, labels: Sequence[str], training: dict[str, float], window: int = 1000):
        self.labels = list(labels)
        self.training = [training[label] for label in self.labels]
        self.total: Counter[str] = Counter()
        self.recent: deque[str] = deque(maxlen=window)
        self.recent_counts: Counter[str] = Counter()

    def add(self, labels: Iterable[str]) -> None:
        recent, counts = self.recent, self.recent_counts
        for label in labels:
            self.total[label] += 1
            if len(recent) == recent.maxlen:
                counts[recent[0]] -= 1
            recent.append(label)
            counts[label] += 1

    def shares(self, window: str) -> dict[str, float]:
        counts = self.total if window == "all" else self.recent_counts
        n = sum(counts[label] for label in self.labels)
        return {label: (counts[label] / n if n else 0.0) for label in self.labels}

    def distance(self, window: str) -> float:
        shares = self.shares(window)
        return js_distance([shares[label] for label in self.labels], self.training)


class ServeMetrics:
    """The collectors of one app and the calls that move them."""

    def __init__(self, labels: Sequence[str] = (), drift_window: int = 1000):
        self.registry = r = prom.CollectorRegistry(auto_describe=True)
        by_route = ["route", "method", "status"]
        self.requests = prom.Counter("lmforge_requests", "HTTP requests", by_route, registry=r)
        self.latency = prom.Histogram(
            "lmforge_request_seconds",
            "request latency",
            by_route,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = prom.Gauge(
            "lmforge_inflight_requests", "requests being handled", registry=r
        )
        self.queue_wait = prom.Histogram(
            "lmforge_queue_wait_seconds", "wait for a batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = prom.Gauge(
            "lmforge_queue_depth", "texts waiting for a batch", registry=r
        )
        self.batch_size = prom.Histogram(
            "lmforge_batch_size", "texts per model call", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = prom.Histogram(
            "lmforge_batch_requests", "requests per model call", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = prom.Histogram(
            "lmforge_batch_seconds", "model time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.predictions = prom.Counter(
            "lmforge_predictions", "predicted labels", ["label"], registry=r
        )
        self.input_chars = prom.Histogram(
            "lmforge_input_chars", "characters per text", buckets=CHAR_BUCKETS, registry=r
        )
        self.truncated = prom.Counter("lmforge_truncated", "texts cut to max_chars", registry=r)
        self.load_seconds = prom.Gauge("lmforge_model_load_seconds", "model load time", registry=r)
        self.warmup_seconds = prom.Gauge("lmforge_model_warmup_seconds", "warm-up time", registry=r)
        self.ready = prom.Gauge("lmforge_model_ready", "1 once loaded and warmed", registry=r)
        self.model_info = prom.Gauge(
            "lmforge_model_info",
            "the served model (value 1)",
            ["name", "version", "backend", "kind"],
            registry=r,
        )
        self.drift = prom.Gauge(
            "lmforge_label_drift",
            "Jensen-Shannon distance (base 2) of served labels from the training distribution",
            ["window"],
            registry=r,
        )
        self.label_share = prom.Gauge(
            "lmforge_label_share",
            "label shares: training, served all / recent",
            ["label", "window"],
            registry=r,
        )
        self.log_rows = prom.Counter(
            "lmforge_prediction_log_rows", "prediction log rows", ["outcome"], registry=r
        )
        self.generated_tokens = prom.Counter(
            "lmforge_generated_pieces", "text pieces streamed by /v1/generate", registry=r
        )
        self._drift: LabelDrift | None = None
        self._drift_window = drift_window

    # -- model -------------------------------------------------------------------------------
    def model_loaded(self, info: dict, load_s: float, warmup_s: float, kind: str) -> None:
        self.load_seconds.set(load_s)
        self.warmup_seconds.set(warmup_s)
        self.model_info.labels(
            name=str(info.get("name", "")),
            version=str(info.get("version", "")),
            backend=str(info.get("backend", "")),
            kind=kind,
        ).set(1)
        self.ready.set(1)

    def set_training_distribution(self, training: dict[str, float]) -> None:
        labels = list(training)
        self._drift = LabelDrift(labels, training, self._drift_window)
        for label, share in training.items():
            self.label_share.labels(label=label, window="training").set(share)
            self.predictions.labels(label=label)  # every label shows, at 0, from the start
        for window in ("all", "recent"):
            self.drift.labels(window=window).set(0.0)

    # -- requests ----------------------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = {"route": route, "method": method, "status": str(status)}
        self.requests.labels(**key).inc()
        self.latency.labels(**key).observe(seconds)

    def observe_batch(self, stats) -> None:
        self.batch_size.observe(stats.texts)
        self.batch_requests.observe(stats.requests)
        self.batch_seconds.observe(stats.seconds)
        for wait in stats.queue_waits:
            self.queue_wait.observe(wait)

    def observe_inputs(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.input_chars.observe(len(text))

    def observe_predictions(self, labels: Sequence[str], truncated: int) -> None:
        for label in labels:
            self.predictions.labels(label=label).inc()
        if truncated:
            self.truncated.inc(truncated)
        if self._drift is not None:
            self._drift.add(labels)

    def _update_drift(self) -> None:
        """Set the drift and share gauges from the counts (at scrape time, not per request)."""
        if self._drift is None or not self._drift.total:
            return
        for window in ("all", "recent"):
            self.drift.labels(window=window).set(self._drift.distance(window))
            for label, share in self._drift.shares(window).items():
                self.label_share.labels(label=label, window=window).set(share)

    def render(self) -> bytes:
        self._update_drift()
        return prom.generate_latest(self.registry)
