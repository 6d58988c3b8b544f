"""What one app serves: the model (loaded and warmed in the background), its batcher, metrics,
prediction log and readiness; and the switch to another version (:meth:`ServeState.reload`).

Hot swap: the batcher calls :meth:`ServeState.predict_batch`, which reads ``self.model`` once per
model call and hands each answer back with the model that gave it. A request never splits across
model calls, so its answers, and the version its response names, come from one model. A reload
loads and warms the new version off the event loop, then rebinds ``self.model`` in one step:
batches already running finish on the old one, the next batch runs on the new one, and no
request fails or waits for the load."""

import asyncio
import gc
import logging
from pathlib import Path

from fastapi import HTTPException

from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor
from lmforge.serve.batcher import MicroBatcher
from lmforge.serve.drift import read_reference
from lmforge.serve.generation import CAUSAL_LM, CLASSIFIER, CausalLM, folder_kind
from lmforge.serve.metrics import ServeMetrics, training_label_distribution
from lmforge.serve.registry import Registry, is_registry
from lmforge.serve.settings import ServeSettings
from lmforge.serve.shadow import ShadowMetrics, ShadowScorer, resolve_shadow
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


def _refreeze() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ServeState:
    """The served model and everything around it, for one app."""

    def __init__(
        self, model, settings: ServeSettings, source: str | Path | None = None, shadow=None
    ):
        """``model``: a folder or registry folder to load, or a loaded model (then ``source``,
        if given, is the folder or registry it came from, for reloads); ``shadow``: the
        loaded ``settings.shadow`` candidate, else it is loaded with the model."""
        self.settings = settings
        origin = Path(model) if isinstance(model, str | Path) else source and Path(source)
        self.registry: Registry | None = None
        self.version_name: str | None = None
        if origin is not None and is_registry(origin):
            self.registry = Registry(origin)
            self.version_name = self.registry.current
            origin = self.registry.path(self.version_name)
        if isinstance(model, str | Path):
            self.source, self.model = origin, None
            self.kind = folder_kind(self.source)
        else:
            self.source, self.model = origin, model
            self.kind = CAUSAL_LM if isinstance(model, CausalLM) else CLASSIFIER
            self._tag(model, self.version_name)
        self.reload_lock = asyncio.Lock()
        self.metrics = ServeMetrics(drift_window=settings.drift_window)
        from lmforge.serve.drift import InputDrift

        self.input_drift = InputDrift(self.metrics.registry, settings.drift_window)
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
        self.shadow: ShadowScorer | None = None
        self._shadow_model = shadow
        self.shadow_metrics = ShadowMetrics(self.metrics.registry) if settings.shadow else None

    # -- startup -----------------------------------------------------------------------------
    def _load_and_warm(self) -> None:
        if self.model is None:
            self.model = load_served_model(self.source, self.kind, self.settings)
            self._tag(self.model, self.version_name)
        self.warmup_seconds = self.model.warmup()
        if self.shadow_metrics is not None:
            self._load_shadow()

    def _load_shadow(self) -> None:
        """The shadow candidate, warmed. Failing to load it costs the shadow, not the server
        (``lmforge serve`` loads it before it listens, so there it is a one-line error)."""
        try:
            if self.kind != CLASSIFIER:
                raise LmforgeError("--shadow needs a classifier (the served model is not one)")
            model = self._shadow_model
            if model is None:
                folder, version = resolve_shadow(self.settings.shadow, self.registry)
                model = load_served_model(folder, CLASSIFIER, self.settings)
                self._tag(model, version)
            model.warmup()
        except Exception:
            log.exception(
                "loading the shadow model %s failed: serving without it", self.settings.shadow
            )
            return
        self.shadow = ShadowScorer(
            model,
            self.shadow_metrics,
            self.settings.shadow_queue,
            self.settings.max_batch,
            self.settings.shadow_sample,
        )
        self.shadow.start()

    @staticmethod
    def _tag(model, version: str | None) -> None:
        """A registry version's name is the version every response names."""
        if version and isinstance(model, Predictor):
            model.meta = {**model.meta, "version": version}

    def predict_batch(self, texts: list[str]) -> list[tuple[Predictor, object]]:
        """What the batcher runs: (the model that answered, its answer) per text."""
        model = self.model  # read once: a reload between two batches never splits one
        return [(model, answer) for answer in model.predict(texts)]

    async def reload(self, version: str | None = None) -> dict:
        """Load ``version`` (a registry's: default its current; a plain folder: itself again),
        warm it, then switch to it; what :meth:`_describe` says about it."""
        async with self.reload_lock:
            if self.kind != CLASSIFIER or self.source is None or not self.ready:
                raise LmforgeError("nothing to reload: serve a classifier folder or a registry")
            if self.registry is not None:
                name = version or self.registry.current
                folder = self.registry.path(name)
            elif version:
                raise LmforgeError("versions need a registry folder (lmforge registry add)")
            else:
                name, folder = None, self.source

            def load():
                model = load_served_model(folder, CLASSIFIER, self.settings)
                self._tag(model, name)
                return model, model.warmup()

            new, warmup_seconds = await asyncio.to_thread(load)
            self.model, self.source, self.version_name = new, folder, name  # the switch
            self.warmup_seconds = warmup_seconds
            self.info = self._describe()
            self.training_distribution, self.training_source = training_label_distribution(
                new.meta, new.labels
            )
            self.metrics.set_training_distribution(self.training_distribution)
            self.input_drift.set_reference(read_reference(folder))
            self.metrics.model_info.clear()
            self.metrics.model_loaded(self.info, new.load_seconds, warmup_seconds, self.kind)
            if self.frozen:  # the old model sits in gc.freeze()'s permanent generation: release
                # it and freeze the new one (one full collection, ~0.5 s, once per reload)
                await asyncio.to_thread(_refreeze)
            log.info("now serving %s version %s", new.name, new.version)
            return self.info

    def versions(self) -> list[dict]:
        """The registry's versions with their metadata (empty for a plain folder)."""
        if self.registry is None:
            return []
        return [
            {**self.registry.metadata(v), "version": v, "current": v == self.version_name}
            for v in self.registry.versions()
        ]

    async def load(self) -> None:
        try:
            await asyncio.to_thread(self._load_and_warm)
            if self.kind == CLASSIFIER:
                labels = self.model.labels
                self.training_distribution, self.training_source = training_label_distribution(
                    self.model.meta, labels
                )
                self.metrics.set_training_distribution(self.training_distribution)
                self.input_drift.set_reference(read_reference(self.source))
                self.batcher = MicroBatcher(
                    self.predict_batch,
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

    def shadow_info(self) -> dict | None:
        """What ``/v1/models`` says about the shadow candidate (None without one)."""
        if self.shadow is None:
            return None
        shadow = self.shadow
        return {
            "name": shadow.model.name,
            "version": shadow.model.version,
            "scored": shadow.scored,
            "dropped": shadow.dropped,
            "errors": shadow.errors,
            "agreement": shadow.agreement,
        }

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
