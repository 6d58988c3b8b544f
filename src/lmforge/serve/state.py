"""What one app serves: the model (loaded and warmed in the background), its batcher, metrics,
prediction log and readiness."""

import asyncio
import gc
import logging
from pathlib import Path

from fastapi import HTTPException

from lmforge.predictor import Predictor
from lmforge.serve.batcher import MicroBatcher
from lmforge.serve.generation import CAUSAL_LM, CLASSIFIER, CausalLM, folder_kind
from lmforge.serve.metrics import ServeMetrics, training_label_distribution
from lmforge.serve.settings import ServeSettings
from lmforge.serve.store import PredictionLog

log = logging.getLogger("lmforge.serve")


def load_served_model(source: Path, kind: str, settings: ServeSettings):
    """The Predictor (classifier folders) or CausalLM a server runs, loaded as ``settings`` say."""
    if kind == CLASSIFIER:
        return Predictor.load(
            source,
            backend=settings.backend,
            batch_size=settings.model_batch or settings.max_batch,
            max_chars=settings.max_chars,
            trust_model_code=settings.trust_model_code,
            **settings.backend_options,
        )
    return CausalLM.load(source)


class ServeState:
    """The served model and everything around it, for one app."""

    def __init__(self, model, settings: ServeSettings):
        self.settings = settings
        if isinstance(model, str | Path):
            self.source, self.model = Path(model), None
            self.kind = folder_kind(self.source)
        else:
            self.source, self.model = None, model
            self.kind = CAUSAL_LM if isinstance(model, CausalLM) else CLASSIFIER
        self.metrics = ServeMetrics(drift_window=settings.drift_window)
        self.batcher: MicroBatcher | None = None
        self.prediction_log: PredictionLog | None = None
        self.generate_lock = asyncio.Semaphore(1)
        self.ready = False
        self.load_error: str | None = None
        self.warmup_seconds = 0.0
        self.training_distribution: dict[str, float] = {}
        self.training_source = ""
        self.info: dict = {}
        self.frozen = False

    # -- startup -----------------------------------------------------------------------------
    def _load_and_warm(self) -> None:
        if self.model is None:
            self.model = load_served_model(self.source, self.kind, self.settings)
        self.warmup_seconds = self.model.warmup()

    async def load(self) -> None:
        try:
            await asyncio.to_thread(self._load_and_warm)
            if self.kind == CLASSIFIER:
                labels = self.model.labels
                self.training_distribution, self.training_source = training_label_distribution(
                    self.model.meta, labels
                )
                self.metrics.set_training_distribution(self.training_distribution)
                self.batcher = MicroBatcher(
                    self.model.predict,
                    self.settings.max_batch,
                    self.settings.max_wait_ms,
                    on_batch=self.metrics.observe_batch,
                )
                await self.batcher.start()
            self.info = self._describe()
            # What is loaded by now (libraries, model, app) lives as long as the server. A full
            # garbage collection walked all of it: 0.4-0.6 s for ~170k objects on the 2-core
            # machine, every request in flight stalled meanwhile (the p99 of
            # benchmarks/serve_bench.py). gc.freeze() takes it out of the collector's sight;
            # requests' own garbage is collected as before. The app's shutdown unfreezes.
            gc.collect()
            gc.freeze()
            self.frozen = True
            self.metrics.model_loaded(
                self.info, self.model.load_seconds, self.warmup_seconds, self.kind
            )
            self.ready = True
            log.info("model %s ready (%s)", self.model.name, self.kind)
        except Exception as exc:
            # the details (exception, paths) go to the server log; clients see a generic reason
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("loading the model failed")

    def _describe(self) -> dict:
        info = self.model.info()
        return {k: v for k, v in info.items() if k != "labels"} | {
            "labels": list(getattr(self.model, "labels", []))
        }

    def require_ready(self) -> None:
        if not self.ready:
            detail = (
                "model failed to load (the server log says why)"
                if self.load_error
                else "model is loading"
            )
            raise HTTPException(503, detail, headers={"Retry-After": "1"})
