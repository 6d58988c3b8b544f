"""What kind of folder is served, and the causal-LM side of the server (``/v1/generate``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from lmforge.classify.estimator import MODEL_JSON
from lmforge.errors import LmforgeError

CLASSIFIER = "classifier"
CAUSAL_LM = "causal_lm"


def folder_kind(directory: str | Path) -> str:
    """``classifier`` (an lmforge classifier folder) or ``causal_lm`` (an HF causal-LM folder)."""
    path = Path(directory)
    if not path.is_dir():
        raise LmforgeError(f"model folder not found: {path}")
    if (path / MODEL_JSON).is_file():
        return CLASSIFIER
    config = path / "config.json"
    if not config.is_file():
        raise LmforgeError(f"{path}: neither a classifier ({MODEL_JSON}) nor a model folder")
    try:
        archs = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except json.JSONDecodeError as exc:
        raise LmforgeError(f"{config}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        return CAUSAL_LM
    raise LmforgeError(
        f"{path}: {', '.join(archs) or 'this model'} is not a causal LM; "
        f"classifier folders have {MODEL_JSON}"
    )


class CausalLM:
    """A loaded causal LM + tokenizer: ``stream(prompt, ...)`` yields text pieces."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.model = self.tokenizer = None
        self.load_seconds = 0.0

    @classmethod
    def load(cls, directory: str | Path) -> CausalLM:
        from lmforge.generate import load_causal_lm

        lm = cls(directory)
        start = time.perf_counter()
        lm.model, lm.tokenizer = load_causal_lm(lm.directory)
        lm.load_seconds = time.perf_counter() - start
        return lm

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def version(self) -> str:
        weights = [p for p in self.directory.glob("*.safetensors")]
        stamp = max((p.stat().st_mtime for p in weights), default=0.0)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp)) if stamp else ""

    def info(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "model_type": str(getattr(self.model.config, "model_type", "")),
            "backend": "torch",
            "size_bytes": sum(p.stat().st_size for p in self.directory.glob("*.safetensors")),
        }

    def warmup(self) -> float:
        start = time.perf_counter()
        for _ in self.stream("warm up", max_new_tokens=2, temperature=0):
            pass
        return time.perf_counter() - start

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 50,
        stop: threading.Event | None = None,
        **sampling,
    ) -> Iterator[str]:
        """Text pieces of the continuation; stops early once ``stop`` is set."""
        from lmforge.generate import stream_text

        for piece in stream_text(self.model, self.tokenizer, prompt, max_new_tokens, **sampling):
            if stop is not None and stop.is_set():
                return
            yield piece
