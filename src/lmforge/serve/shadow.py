"""Shadow mode: a candidate model scores the texts the live model answered, off the response
path, and ``/metrics`` says how often the two agree.

``lmforge serve REGISTRY --shadow v2`` (a registry version) or ``--shadow FOLDER`` (any
classifier folder) loads the candidate beside the live model. After a ``/v1/classify`` request
is answered, its texts and the live labels go into a bounded queue (``put_nowait``: the request
never waits for it); one background thread takes what is queued, scores it with the candidate
in one call and compares labels. When the queue is full the new work is dropped and counted;
when the candidate raises, its texts are counted as errors and the live answer, already sent,
is untouched. Exported:

- ``lmforge_shadow_agreement``: share of shadow-scored texts whose candidate label equals the
  live label, since the shadow started (``lmforge_shadow_agreed_texts_total`` /
  ``lmforge_shadow_texts_total{outcome="scored"}`` give it per time window in PromQL);
- ``lmforge_shadow_texts_total{outcome="scored"|"dropped"|"error"}``;
- ``lmforge_shadow_info{name, version}`` (value 1).

A text is the unit (a request of 5 texts is 5 comparisons), as in ``lmforge_predictions_total``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import prometheus_client as prom

from lmforge.errors import LmforgeError

log = logging.getLogger("lmforge.serve")

#: what stops the worker thread
_STOP = object()


def resolve_shadow(shadow: str, registry=None) -> tuple[Path, str | None]:
    """(folder, registry version name or None) of ``--shadow``: a version of the served registry
    when ``registry`` has one of that name, else a classifier folder (or a run folder)."""
    from lmforge.classify.estimator import MODEL_JSON
    from lmforge.predictor import resolve_model_dir

    if registry is not None and shadow in registry.versions():
        return registry.path(shadow), shadow
    folder = resolve_model_dir(Path(shadow))  # a run folder: the model it chose
    if (folder / MODEL_JSON).is_file():
        return folder, None
    have = f" (the registry has {registry.versions()})" if registry is not None else ""
    raise LmforgeError(f"--shadow {shadow}: neither a registry version nor a model folder{have}")


class ShadowMetrics:
    """The shadow's collectors, on the app's registry."""

    def __init__(self, registry: prom.CollectorRegistry):
        self.texts = prom.Counter(
            "lmforge_shadow_texts",
            "texts for the shadow candidate: scored, dropped (queue full), error (it raised)",
            ["outcome"],
            registry=registry,
        )
        self.agreed = prom.Counter(
            "lmforge_shadow_agreed_texts",
            "shadow-scored texts whose candidate label equals the live label",
            registry=registry,
        )
        self.agreement = prom.Gauge(
            "lmforge_shadow_agreement",
            "share of shadow-scored texts where candidate and live labels agree (since start)",
            registry=registry,
        )
        self.agreement.set(float("nan"))  # no comparison yet: a gap, not "0 % agree"
        self.info = prom.Gauge(
            "lmforge_shadow_info",
            "the shadow candidate (value 1)",
            ["name", "version"],
            registry=registry,
        )
        for outcome in ("scored", "dropped", "error"):  # each shows, at 0, from the start
            self.texts.labels(outcome=outcome)


class ShadowScorer:
    """A candidate model fed from a bounded queue by one background thread."""

    def __init__(
        self,
        model,
        metrics: ShadowMetrics,
        max_queue: int = 1000,
        max_batch: int = 64,
        sample: float = 1.0,
    ):
        """``model``: a loaded :class:`~lmforge.predictor.Predictor`; ``max_queue``: requests
        held before new ones are dropped; ``max_batch``: texts per candidate call (at least one
        request's); ``sample``: share of answered requests offered to the candidate (every
        1/sample-th, evenly spread: a deterministic stride, not a coin toss)."""
        self.model = model
        self.metrics = metrics
        self.max_batch = max_batch
        self.sample = sample
        self._credit = 0.0
        self.scored = self.agreed = self.dropped = self.errors = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._last_error_log = 0.0
        metrics.info.labels(name=model.name, version=model.version).set(1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lmforge-shadow", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str], live_labels: Sequence[str]) -> bool:
        """Queue one answered request for the candidate (if it is in the sample); False when it
        is not, or when the queue is full (then counted as dropped). Never blocks."""
        if self.sample < 1.0:
            self._credit += self.sample
            if self._credit < 1.0 - 1e-9:  # float sums: 10 x 0.1 is 0.999...
                return False
            self._credit -= 1.0
        try:
            self._queue.put_nowait((list(texts), list(live_labels)))
            return True
        except queue.Full:
            self.dropped += len(texts)
            self.metrics.texts.labels(outcome="dropped").inc(len(texts))
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread; what is still queued is scored first (up to ``timeout``)."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():  # the queue may be full: retry until the stop fits
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    return
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far has been scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.scored if self.scored else None

    # -- the worker --------------------------------------------------------------------------
    def _take(self) -> tuple[list[str], list[str], int, bool]:
        """(texts, live labels, queue items taken, stop seen): one item, blocking, then what
        else is queued up to ``max_batch`` texts."""
        item = self._queue.get()
        if item is _STOP:
            return [], [], 1, True
        texts, labels = list(item[0]), list(item[1])
        taken, stop = 1, False
        while len(texts) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            taken += 1
            if item is _STOP:
                stop = True
                break
            texts += item[0]
            labels += item[1]
        return texts, labels, taken, stop

    def _run(self) -> None:
        while True:
            texts, live, taken, stop = self._take()
            try:
                if texts:
                    self._score(texts, live)
            finally:
                for _ in range(taken):
                    self._queue.task_done()
            if stop:
                return

    def _score(self, texts: list[str], live: list[str]) -> None:
        try:
            proba = self.model.predict_proba(texts)
            labels = self.model.labels
            candidate = [labels[i] for i in np.argmax(proba, axis=1)]
        except Exception as exc:  # the candidate's failure is counted, never the live side's
            self.errors += len(texts)
            self.metrics.texts.labels(outcome="error").inc(len(texts))
            now = time.monotonic()
            if now - self._last_error_log > 60:  # one line a minute, never the texts
                self._last_error_log = now
                log.warning("shadow model failed on %d texts: %s", len(texts), type(exc).__name__)
            return
        agreed = sum(a == b for a, b in zip(candidate, live, strict=True))
        self.scored += len(texts)
        self.agreed += agreed
        self.metrics.texts.labels(outcome="scored").inc(len(texts))
        self.metrics.agreed.inc(agreed)
        self.metrics.agreement.set(self.agreed / self.scored)
