"""How a corpus build is laid out: stages cut at global steps, config identity, file locations."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.registry import build_step
from lmforge.corpus.step import GlobalStep


@dataclass(frozen=True)
class Stage:
    """Document steps (indices into the recipe's step list), then optionally one global step."""

    doc_steps: tuple[int, ...]
    global_step: int | None


def plan_stages(config: CorpusConfig) -> list[Stage]:
    """Cut the enabled steps at each global step. The last stage has no global step."""
    stages: list[Stage] = []
    current: list[int] = []
    for index, step_config in enumerate(config.steps):
        if not step_config.enabled:
            continue
        if isinstance(build_step_cached(config_key(config), index), GlobalStep):
            stages.append(Stage(tuple(current), index))
            current = []
        else:
            current.append(index)
    stages.append(Stage(tuple(current), None))
    return stages


def config_key(config: CorpusConfig) -> str:
    """Canonical JSON of everything that decides the output (not the workers nor the executor)."""
    data = config.model_dump(mode="json", exclude={"workers", "executor"})
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def config_hash(config: CorpusConfig) -> str:
    return hashlib.sha256(config_key(config).encode()).hexdigest()[:16]


@cache
def config_from_key(key: str) -> CorpusConfig:
    return CorpusConfig.model_validate_json(key)


@cache
def build_step_cached(key: str, index: int) -> Any:
    """One step object per (config, index) per process: models/tables load once per worker."""
    return build_step(config_from_key(key).steps[index])


def step_key(index: int, config: CorpusConfig) -> str:
    return f"{index:02d}:{config.steps[index].type}"


class Layout:
    """Where everything lives inside the output folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.work = out / "_work"
        self.data = out / "data"
        self.removed = out / "removed"

    def stage_docs(self, stage: int, rank: int) -> Path:
        return self.work / f"stage{stage}" / f"docs-{rank:05d}.parquet"

    def stage_sigs(self, stage: int, rank: int) -> Path:
        return self.work / f"stage{stage}" / f"sigs-{rank:05d}.parquet"

    def marker(self, stage: int, rank: int) -> Path:
        return self.work / f"stage{stage}" / f"done-{rank:05d}.json"

    def resolved(self, stage: int) -> Path:
        return self.work / f"global{stage}" / "removals.parquet"

    def resolved_marker(self, stage: int) -> Path:
        return self.work / f"global{stage}" / "done.json"

    def removed_log(self, stage: int, rank: int) -> Path:
        return self.removed / f"stage{stage}-{rank:05d}.parquet"

    def output(self, rank: int, fmt: str) -> Path:
        return self.data / (
            f"part-{rank:05d}.parquet" if fmt == "parquet" else f"part-{rank:05d}.jsonl"
        )
