"""Corpus variants of a recipe: ``raw``, ``full`` and leave-one-out ``no-<step>``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from lmforge.corpus.config import CorpusConfig
from lmforge.errors import LmforgeError

RAW, FULL = "raw", "full"
KEEP_IN_RAW = ("normalize",)  # "raw" = read + normalize: the text a step sees, unfiltered


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    corpus: CorpusConfig


def _step_names(steps: list[Any]) -> list[str]:
    """``no-<type>`` per step; ``no-<type>#k`` when the type occurs more than once."""
    totals = Counter(s.type for s in steps)
    seen: Counter = Counter()
    names = []
    for step in steps:
        seen[step.type] += 1
        suffix = f"#{seen[step.type]}" if totals[step.type] > 1 else ""
        names.append(f"no-{step.type}{suffix}")
    return names


def default_variant_names(corpus: CorpusConfig) -> list[str]:
    enabled = [s for s in corpus.steps if getattr(s, "enabled", True)]
    names = _step_names(enabled)
    return [RAW, FULL] + [
        n for n, s in zip(names, enabled, strict=True) if s.type not in KEEP_IN_RAW
    ]


def make_variants(corpus: CorpusConfig, names: list[str] | None = None) -> list[Variant]:
    """The corpus config of each named variant (default: :func:`default_variant_names`)."""
    enabled = [s for s in corpus.steps if getattr(s, "enabled", True)]
    loo = dict(zip(_step_names(enabled), range(len(enabled)), strict=True))
    names = names or default_variant_names(corpus)
    if len(set(names)) != len(names):
        raise LmforgeError(f"ablate.variants lists a variant twice: {names}")
    variants = []
    for name in names:
        if name == FULL:
            steps, what = enabled, "the recipe's steps"
        elif name == RAW:
            steps = [s for s in enabled if s.type in KEEP_IN_RAW]
            what = "read + normalize only"
        elif name in loo:
            steps = [s for i, s in enumerate(enabled) if i != loo[name]]
            what = f"the recipe without {name[3:]}"
        else:
            choices = ", ".join([RAW, FULL, *loo])
            raise LmforgeError(f"ablate.variants: unknown variant {name!r}; choose from {choices}")
        variants.append(Variant(name, what, corpus.model_copy(update={"steps": list(steps)})))
    if FULL not in names:
        raise LmforgeError(
            "ablate.variants must include 'full' (its held-out text is the yardstick)"
        )
    return variants
