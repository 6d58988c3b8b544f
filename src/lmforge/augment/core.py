"""Augmenting labelled texts: copies of each text by EDA's word operations and by MLM-contextual
replacement, reproducible from a seed, optionally filtered by a teacher model.

Every copy carries the id of the text it came from (``origin_id``): the data loader keeps a copy
only when its origin lands in the training split (:func:`lmforge.classify.data.
load_classification_data`), and the leakage guard refuses a training copy whose origin is a
validation or test text (:func:`lmforge.classify.leakage.find_leakage`). Validation and test texts
are never augmented: :func:`augment_train` augments ``data.train_texts`` only.

Randomness: each copy draws from its own generator, seeded by ``(seed, crc32(origin id), copy
number)``, so a copy does not depend on the order, the batching or the other records: same
input + seed, same copies.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lmforge.augment.words import (
    EDA_OPS,
    cut,
    n_changes,
    random_delete,
    random_insert,
    random_swap,
    synonym_replace,
)
from lmforge.errors import LmforgeError

Op = Literal["delete", "swap", "insert", "synonym", "mlm"]
ALL_OPS: tuple[str, ...] = (*EDA_OPS, "mlm")
SYNONYM_OPS = ("insert", "synonym")


class AugmentConfig(BaseModel, extra="forbid"):
    """What ``lmforge augment`` and the recipe's ``classify.augment`` take."""

    ops: list[Op] = Field(
        default_factory=lambda: list(EDA_OPS),
        description="operations; copy k of a text uses ops[(offset + k) % len(ops)]",
    )
    rate: float = Field(0.1, gt=0, le=0.5, description="share of a text's words changed per copy")
    copies: int = Field(4, ge=1, le=32, description="copies made per training text")
    mlm_model: str | None = Field(
        None, description="MLM folder for the 'mlm' op (in a run: the pretrain stage's)"
    )
    mlm_top_k: int = Field(10, ge=1, le=1000, description="'mlm' draws among this many fillers")
    teacher: str | None = Field(
        None,
        description="model folder: drop copies whose predicted label differs from the origin's",
    )
    seed: int | None = Field(None, description="default: the run's / command's seed")

    @field_validator("ops")
    @classmethod
    def _ops(cls, ops: list[str]) -> list[str]:
        if not ops:
            raise ValueError("give at least one operation")
        if len(set(ops)) != len(ops):
            raise ValueError(f"an operation is listed twice: {ops}")
        return ops


@dataclass
class AugmentedCopy:
    id: str
    origin_id: str
    text: str
    label: Any
    op: str


@dataclass
class AugmentResult:
    copies: list[AugmentedCopy]
    stats: dict = field(default_factory=dict)


def parse_ops(spec: str) -> list[str]:
    """``"eda"`` (the four word ops), ``"all"`` (those + mlm) or a comma list."""
    spec = spec.strip().lower()
    if spec == "eda":
        return list(EDA_OPS)
    if spec == "all":
        return list(ALL_OPS)
    ops = [o.strip() for o in spec.split(",") if o.strip()]
    unknown = [o for o in ops if o not in ALL_OPS]
    if unknown or not ops:
        raise LmforgeError(f"unknown operation(s) {unknown or spec!r}: use {', '.join(ALL_OPS)}")
    return ops


def _rng(seed: int, origin_id: str, k: int | None = None) -> np.random.Generator:
    key = [seed, zlib.crc32(origin_id.encode("utf-8"))]
    return np.random.default_rng(key if k is None else [*key, k])


def _progress(console: Console | None, show: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show,
    )


def augment_texts(
    texts: Sequence[str],
    labels: Sequence[Any] | None = None,
    ids: Sequence[str] | None = None,
    config: AugmentConfig | None = None,
    seed: int = 0,
    console: Console | None = None,
    show_progress: bool = True,
) -> AugmentResult:
    """Copies of every text (none of a text that is empty or has nothing to change).

    ``stats`` counts per op what was made, and why a copy was not made or was dropped:
    ``no_candidate`` (e.g. no word with a synonym), ``unchanged`` (the copy equals its origin),
    ``duplicate`` (equals an earlier copy of the same text), ``teacher_flipped``.
    """
    config = config or AugmentConfig()
    seed = config.seed if config.seed is not None else seed
    texts = list(texts)
    ids = [str(i) for i in (ids if ids is not None else range(len(texts)))]
    labels = list(labels) if labels is not None else [None] * len(texts)
    if not (len(ids) == len(texts) == len(labels)):
        raise LmforgeError("augment: texts, labels and ids must have the same length")
    if len(set(ids)) != len(ids):
        raise LmforgeError("augment: ids must be unique (each copy names its origin by id)")
    ops = list(config.ops)
    synonyms = stop = replacer = None
    if any(op in SYNONYM_OPS for op in ops):
        from lmforge.augment.synonyms import synonyms
        from lmforge.classify.classical import stopwords

        stop = stopwords()
    if "mlm" in ops:
        if not config.mlm_model:
            raise LmforgeError("the 'mlm' operation needs an MLM model folder (--mlm-model)")
        from lmforge.augment.mlm import MaskedLMReplacer, MaskJob

        replacer = MaskedLMReplacer(config.mlm_model, top_k=config.mlm_top_k)
    teacher = None
    if config.teacher:  # loaded first: a bad folder fails before any work is done
        from lmforge.predictor import Predictor

        teacher = Predictor.load(config.teacher)

    counts: Counter = Counter()
    made: dict[tuple[int, int], tuple[str, list[str]]] = {}
    pending: list[tuple[int, int, Any]] = []

    def flush() -> None:
        filled = replacer.fill([job for _, _, job in pending])
        for (i, k, _), tokens in zip(pending, filled, strict=True):
            made[(i, k)] = ("mlm", tokens)
        pending.clear()

    with _progress(console, show_progress) as bar:
        task = bar.add_task("augmenting", total=len(texts))
        for i, text in enumerate(texts):
            bar.advance(task)
            if not isinstance(text, str) or not text.strip():
                counts["skipped_empty"] += 1
                continue
            tokens = cut(text)
            n = n_changes(tokens, config.rate)
            offset = int(_rng(seed, ids[i]).integers(len(ops)))
            for k in range(config.copies):
                op = ops[(offset + k) % len(ops)]
                rng = _rng(seed, ids[i], k)
                if op == "mlm":
                    positions = replacer.plan(tokens, n, rng)
                    if positions is None:
                        counts[f"{op}.no_candidate"] += 1
                    else:
                        pending.append((i, k, MaskJob(tokens, positions, rng)))
                    continue
                if op == "delete":
                    new = random_delete(tokens, n, rng)
                elif op == "swap":
                    new = random_swap(tokens, n, rng)
                elif op == "synonym":
                    new = synonym_replace(tokens, n, rng, synonyms, stop)
                else:
                    new = random_insert(tokens, n, rng, synonyms, stop)
                if new is None:
                    counts[f"{op}.no_candidate"] += 1
                else:
                    made[(i, k)] = (op, new)
            if replacer is not None and len(pending) >= replacer.batch_size:
                flush()
        if pending:
            flush()

    copies: list[AugmentedCopy] = []
    seen: dict[int, set[str]] = {}
    for (i, k), (op, tokens) in sorted(made.items()):
        new_text = "".join(tokens)
        if new_text == texts[i]:
            counts[f"{op}.unchanged"] += 1
            continue
        if new_text in seen.setdefault(i, set()):
            counts[f"{op}.duplicate"] += 1
            continue
        seen[i].add(new_text)
        copies.append(AugmentedCopy(f"{ids[i]}~aug{k}", ids[i], new_text, labels[i], op))
        counts[f"{op}.made"] += 1
    if teacher is not None:
        copies = _teacher_filter(copies, dict(zip(ids, texts, strict=True)), teacher, counts)
    stats = {
        "texts": len(texts),
        "copies": len(copies),
        "seed": seed,
        **dict(sorted(counts.items())),
    }
    return AugmentResult(copies, stats)


def _teacher_filter(
    copies: list[AugmentedCopy], text_of: dict[str, str], predictor, counts: Counter
) -> list[AugmentedCopy]:
    """Keep a copy only when the teacher predicts the same label for it as for its origin."""
    if not copies:
        return copies
    origins = sorted({c.origin_id for c in copies})
    origin_label = dict(
        zip(
            origins,
            (p.label for p in predictor.predict([text_of[o] for o in origins])),
            strict=True,
        )
    )
    kept = []
    for copy, pred in zip(copies, predictor.predict([c.text for c in copies]), strict=True):
        if pred.label == origin_label[copy.origin_id]:
            kept.append(copy)
        else:
            counts[f"{copy.op}.teacher_flipped"] += 1
    return kept


def augment_train(data, config: AugmentConfig, seed: int = 0, console: Console | None = None):
    """``data`` with augmented copies of its *training* texts appended to the training split.

    Validation and test texts are never augmented. A copy equal to any text already in the data
    is dropped (counted ``collides``). ``data.augmented_origins`` maps each copy to its origin
    text, which the leakage guard checks; ``data.stats["augment"]`` holds the counts.
    """
    result = augment_texts(
        data.train_texts,
        data.train_labels.tolist(),
        [f"train-{i}" for i in range(len(data.train_texts))],
        config,
        seed,
        console,
    )
    taken = set(data.train_texts) | set(data.val_texts) | set(data.test_texts)
    origin_of = {f"train-{i}": t for i, t in enumerate(data.train_texts)}
    texts, labels, origins = [], [], dict(data.augmented_origins)
    for copy in result.copies:
        if copy.text in taken:
            result.stats["collides"] = result.stats.get("collides", 0) + 1
            continue
        taken.add(copy.text)
        texts.append(copy.text)
        labels.append(copy.label)
        origins[copy.text] = origin_of[copy.origin_id]
    result.stats["added"] = len(texts)
    train_labels = np.concatenate([data.train_labels, np.asarray(labels, dtype=object)])
    return replace(
        data,
        train_texts=data.train_texts + texts,
        train_labels=train_labels.astype(data.train_labels.dtype, copy=False),
        augmented_origins=origins,
        stats={**data.stats, "augment": result.stats},
    )
