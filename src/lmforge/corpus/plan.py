"""How a corpus build is laid out: phases cut at global steps, config identity, file locations."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.registry import build_step
from lmforge.corpus.sources import Shard
from lmforge.corpus.step import GlobalStep
from lmforge.corpus.storage import LocalStorage, Storage

# Ranks from many small files: a rank reads consecutive whole files of one source up to
# RANK_BYTES, or up to total/MIN_RANKS when that is less (so that small inputs still spread
# over MIN_RANKS ranks, i.e. cores). Fixed numbers, never the worker count: the output must
# not depend on it. 2,000 one-line files become ~16 ranks, not 2,000 (each writing a data
# part and a removed log per stage).
RANK_BYTES = 64 * 2**20
MIN_RANKS = 16


@dataclass(frozen=True)
class Phase:
    """Document steps (indices into the recipe's step list), then optionally one global step."""

    doc_steps: tuple[int, ...]
    global_step: int | None


def plan_phases(config: CorpusConfig) -> list[Phase]:
    """Cut the enabled steps at each global step. The last phase has no global step."""
    phases: list[Phase] = []
    current: list[int] = []
    for index, step_config in enumerate(config.steps):
        if not step_config.enabled:
            continue
        if isinstance(build_step_cached(config_key(config), index), GlobalStep):
            phases.append(Phase(tuple(current), index))
            current = []
        else:
            current.append(index)
    phases.append(Phase(tuple(current), None))
    return phases


def plan_ranks(shards: list[Shard]) -> list[tuple[Shard, ...]]:
    """Group the (sorted) shards into ranks: consecutive whole files of the same source while
    their sizes add up to at most the capacity (see :data:`RANK_BYTES`); a file at or over
    it, a file of unknown size and a line range of a built-in data set are ranks of their
    own. Deterministic: the same shards always give the same ranks."""
    sizes = [s.size for s in shards if s.size is not None]
    capacity = min(RANK_BYTES, -(-sum(sizes) // MIN_RANKS)) if sizes else 0
    ranks: list[tuple[Shard, ...]] = []
    group: list[Shard] = []
    group_bytes = 0
    for shard in shards:
        groupable = shard.size is not None and shard.size < capacity and shard.stop is None
        if group and (
            not groupable
            or shard.source_index != group[0].source_index
            or group_bytes + shard.size > capacity
        ):
            ranks.append(tuple(group))
            group, group_bytes = [], 0
        if groupable:
            group.append(shard)
            group_bytes += shard.size
        else:
            ranks.append((shard,))
    if group:
        ranks.append(tuple(group))
    return ranks


def config_key(config: CorpusConfig) -> str:
    """Canonical JSON of everything that decides the output's bytes (not the workers, the
    executor, nor where the output goes)."""
    data = config.model_dump(
        mode="json", exclude={"workers": True, "executor": True, "output": {"path"}}
    )
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
    """Where everything lives inside the output folder.

    Paths are under ``out``, a local folder: the output itself, or, for an output at a URL, the
    staging folder whose files ``storage`` puts at the same relative path of the URL.
    """

    def __init__(self, out: Path, storage: Storage | None = None) -> None:
        self.out = out
        self.storage = storage or LocalStorage(out)
        self.work = out / "_work"
        self.data = out / "data"
        self.removed = out / "removed"

    def phase_docs(self, phase: int, rank: int) -> Path:
        return self.work / f"phase{phase}" / f"docs-{rank:05d}.parquet"

    def phase_sigs(self, phase: int, rank: int) -> Path:
        return self.work / f"phase{phase}" / f"sigs-{rank:05d}.parquet"

    def marker(self, phase: int, rank: int) -> Path:
        return self.work / f"phase{phase}" / f"done-{rank:05d}.json"

    def resolved(self, phase: int) -> Path:
        return self.work / f"global{phase}" / "removals.parquet"

    def resolved_marker(self, phase: int) -> Path:
        return self.work / f"global{phase}" / "done.json"

    def removed_log(self, phase: int, rank: int) -> Path:
        return self.removed / f"phase{phase}-{rank:05d}.parquet"

    def output(self, rank: int, fmt: str) -> Path:
        return self.data / (
            f"part-{rank:05d}.parquet" if fmt == "parquet" else f"part-{rank:05d}.jsonl"
        )
