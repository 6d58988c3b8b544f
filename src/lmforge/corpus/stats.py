"""Per-step counters that ranks fill in and the pipeline merges: what came in, what went out, why.

Everything here is plain JSON-able data so a rank can hand its stats back through a
completion marker file, and merging is order-independent (sums, bounded example lists
taken in rank order).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EXAMPLES_PER_REASON = 3
# Length histogram bin edges in characters: 0, 1, 2, 4, ..., 2**20, then everything longer.
LENGTH_EDGES = [0] + [2**i for i in range(21)]


def add_lengths(histogram: list[int], lengths: np.ndarray) -> None:
    """Add documents of the given character lengths to a histogram over ``LENGTH_EDGES``."""
    if len(lengths) == 0:
        return
    lengths = np.asarray(lengths, dtype=np.int64)
    bins = np.zeros(len(lengths), dtype=np.int64)
    positive = lengths > 0
    bins[positive] = np.minimum(
        np.log2(lengths[positive]).astype(np.int64) + 1, len(LENGTH_EDGES) - 1
    )
    for index, count in enumerate(np.bincount(bins, minlength=len(LENGTH_EDGES)).tolist()):
        histogram[index] += count


@dataclass
class StepStats:
    """What one step did on one rank (or, after merging, on the whole corpus)."""

    name: str
    kind: str = "doc"  # doc | global | read
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    counters: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def add_example(self, reason: str, doc_id: str, text: str) -> None:
        bucket = self.examples.setdefault(reason, [])
        if len(bucket) < EXAMPLES_PER_REASON:
            bucket.append({"id": doc_id, "text": text[:200]})

    def merge(self, other: StepStats) -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.chars_in += other.chars_in
        self.chars_out += other.chars_out
        self.seconds += other.seconds
        self.reasons.update(other.reasons)
        self.counters.update(other.counters)
        for reason, items in other.examples.items():
            bucket = self.examples.setdefault(reason, [])
            bucket.extend(items[: EXAMPLES_PER_REASON - len(bucket)])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "seconds": round(self.seconds, 6),
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "counters": dict(sorted(self.counters.items())),
            "examples": self.examples,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepStats:
        return cls(
            name=data["name"],
            kind=data["kind"],
            docs_in=data["docs_in"],
            docs_out=data["docs_out"],
            chars_in=data["chars_in"],
            chars_out=data["chars_out"],
            seconds=data["seconds"],
            reasons=Counter(data["reasons"]),
            counters=Counter(data["counters"]),
            examples={k: list(v) for k, v in data["examples"].items()},
        )


@dataclass
class RankStats:
    """Everything one rank reports for one phase: per-step stats keyed by step key, histograms."""

    steps: dict[str, StepStats] = field(default_factory=dict)
    length_in: list[int] = field(default_factory=lambda: [0] * len(LENGTH_EDGES))
    length_out: list[int] = field(default_factory=lambda: [0] * len(LENGTH_EDGES))
    languages_out: Counter = field(default_factory=Counter)
    sources_in: Counter = field(default_factory=Counter)
    sources_out: Counter = field(default_factory=Counter)
    docs_written: int = 0
    chars_written: int = 0
    removed_logged: int = 0

    def step(self, key: str, name: str, kind: str = "doc") -> StepStats:
        if key not in self.steps:
            self.steps[key] = StepStats(name=name, kind=kind)
        return self.steps[key]

    def merge(self, other: RankStats) -> None:
        for key, stats in other.steps.items():
            self.step(key, stats.name, stats.kind).merge(stats)
        self.length_in = [a + b for a, b in zip(self.length_in, other.length_in, strict=True)]
        self.length_out = [a + b for a, b in zip(self.length_out, other.length_out, strict=True)]
        self.languages_out.update(other.languages_out)
        self.sources_in.update(other.sources_in)
        self.sources_out.update(other.sources_out)
        self.docs_written += other.docs_written
        self.chars_written += other.chars_written
        self.removed_logged += other.removed_logged

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "length_in": self.length_in,
            "length_out": self.length_out,
            "languages_out": dict(sorted(self.languages_out.items())),
            "sources_in": dict(sorted(self.sources_in.items())),
            "sources_out": dict(sorted(self.sources_out.items())),
            "docs_written": self.docs_written,
            "chars_written": self.chars_written,
            "removed_logged": self.removed_logged,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RankStats:
        return cls(
            steps={k: StepStats.from_json(v) for k, v in data["steps"].items()},
            length_in=list(data["length_in"]),
            length_out=list(data["length_out"]),
            languages_out=Counter(data["languages_out"]),
            sources_in=Counter(data["sources_in"]),
            sources_out=Counter(data["sources_out"]),
            docs_written=data["docs_written"],
            chars_written=data["chars_written"],
            removed_logged=data["removed_logged"],
        )
