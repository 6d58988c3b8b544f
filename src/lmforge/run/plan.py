"""What ``lmforge run`` is about to do, decided before it starts: for each stage of the recipe,
whether it runs, is skipped (unchanged), resumes (interrupted) or continues (pretraining with a
raised budget), why, and about how long it will take.

The fingerprints are the same ones the stages record when they finish (:mod:`.state`), so the
plan and the run agree. A stage after one that will rebuild the corpus cannot know its
fingerprint yet (it depends on the corpus's output hash): it is planned to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.run.recipe import PretrainStage, Recipe
from lmforge.run.state import fingerprint, stage_state

# Rates measured on the default run on a quiet 2-core machine (docs/benchmarks.md); a stage
# that ran before uses its own recorded time instead. Estimates, not promises: a busy machine
# or other data changes them.
CORPUS_S = 60.0  # built-in reviews + People's Daily through every step
TOKENIZER_S = 15.0
TOKENS_S = 15.0
PRETRAIN_TOKENS_PER_S = 9_000.0  # tiny MLM, bf16
REAL_TOKENS_PER_POSITION = 0.5  # 264 steps of 64 x 128 held 1.1 M real tokens
BASELINE_S = 15.0  # one classical baseline on 13.9k reviews
FINETUNE_S_PER_TEXT_EPOCH = 0.033  # 23 min for 3 epochs over 13.9k reviews
COMPRESS_S_PER_TEXT = 0.026  # 6 min for the default compress stage
SERVING_S = 60.0  # choosing the served model + benching it beside Naive Bayes

BUDGET_KEYS = ("max_minutes", "max_steps", "max_tokens")


@dataclass
class PlannedStage:
    name: str
    folder: Path
    digest: str | None  # None: unknown until the corpus is rebuilt
    action: str  # run | skip | resume | continue
    reason: str
    estimate_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def pretrain_base(config: PretrainStage, seed: int, upstream: str) -> str:
    """The fingerprint of everything but the budget: equal means a checkpoint can continue."""
    options = config.model_dump(exclude={*BUDGET_KEYS, "snapshot_steps"})
    return fingerprint(options | {"seed": seed}, upstream)


def budget_of(config: PretrainStage) -> dict[str, float]:
    return {k: getattr(config, k) for k in BUDGET_KEYS if getattr(config, k) is not None}


def budget_raised(old: dict[str, float], new: dict[str, float]) -> bool:
    """The same budget kinds, none lower, one higher: training on from the checkpoint gives the
    run the new budget asks for."""
    return (
        bool(old)
        and set(old) == set(new)
        and all(new[k] >= old[k] for k in new)
        and any(new[k] > old[k] for k in new)
    )


def _pretrain_seconds(config: PretrainStage, folder: Path, spent: dict[str, float]) -> float:
    manifest = _read_json(folder / "manifest.json")
    rate = float(manifest.get("tokens_per_s") or PRETRAIN_TOKENS_PER_S)
    per_step = (
        manifest["tokens_seen"] / manifest["steps"]
        if manifest.get("steps")
        else config.batch_size * config.seq_len * config.grad_accum * REAL_TOKENS_PER_POSITION
    )
    seconds = []
    if config.max_minutes is not None:
        seconds.append(60 * (config.max_minutes - spent.get("max_minutes", 0)))
    if config.max_tokens is not None:
        seconds.append((config.max_tokens - spent.get("max_tokens", 0)) / rate)
    if config.max_steps is not None:
        seconds.append((config.max_steps - spent.get("max_steps", 0)) * per_step / rate)
    return max(0.0, min(seconds)) if seconds else 0.0


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def plan_run(recipe: Recipe, corpus_config, n_train: int | None) -> list[PlannedStage]:
    """Every stage the recipe names, in order, with its action and estimate."""
    from lmforge.corpus.plan import config_hash

    run_dir = recipe.run_dir()
    plan: list[PlannedStage] = []
    folder = run_dir / "corpus"
    manifest = _read_json(folder / "manifest.json")
    took = float((manifest.get("timings") or {}).get("total") or CORPUS_S)
    if manifest.get("config_hash") == config_hash(corpus_config):
        upstream: str | None = manifest["output_hash"]
        plan.append(PlannedStage("corpus", folder, upstream, "skip", "unchanged", 0.0))
    else:
        upstream = None
        why = "config changed" if manifest else "not built yet"
        if (folder / "_work" / "plan.json").is_file():
            plan.append(PlannedStage("corpus", folder, None, "resume", "interrupted", took))
        else:
            plan.append(PlannedStage("corpus", folder, None, "run", why, took))

    def add(name: str, config: Any, default_s: float, folder: Path | None = None) -> None:
        nonlocal upstream
        folder = folder or run_dir / name
        state = stage_state(folder)
        digest = fingerprint(config, upstream) if upstream is not None else None
        seconds = float(state.get("seconds") or default_s)
        if digest is None:
            plan.append(PlannedStage(name, folder, None, "run", "an earlier stage runs", seconds))
        elif state.get("fingerprint") == digest and state.get("status") == "done":
            plan.append(PlannedStage(name, folder, digest, "skip", "unchanged", 0.0))
        elif state.get("fingerprint") == digest:
            plan.append(PlannedStage(name, folder, digest, "resume", "interrupted", seconds))
        else:
            why = "config or input changed" if state else "not built yet"
            plan.append(PlannedStage(name, folder, digest, "run", why, default_s))
        upstream = digest

    seed = recipe.seed
    if recipe.tokenizer is not None:
        add("tokenizer", recipe.tokenizer, TOKENIZER_S)
    if recipe.tokenizer is not None and recipe.pack is not None:
        add("tokens", recipe.pack.model_dump() | {"seed": seed}, TOKENS_S)
    if recipe.tokenizer is not None and recipe.pack is not None and recipe.pretrain is not None:
        config = recipe.pretrain
        pre_upstream = upstream
        folder = run_dir / "pretrain"
        add("pretrain", config.model_dump() | {"seed": seed}, _pretrain_seconds(config, folder, {}))
        step = plan[-1]
        state = stage_state(folder)
        step.extra["base"] = (
            pretrain_base(config, seed, pre_upstream) if pre_upstream is not None else None
        )
        if (
            step.action == "run"
            and step.extra["base"] is not None
            and state.get("base") == step.extra["base"]
            and (folder / "checkpoint").exists()
            and budget_raised(state.get("budget") or {}, budget_of(config))
        ):
            step.action = "continue"
            step.reason = f"budget raised from {state['budget']} to {budget_of(config)}"
            step.estimate_s = _pretrain_seconds(config, folder, state["budget"])
    n = n_train or 0
    if recipe.classify is not None:
        c = recipe.classify
        seconds = BASELINE_S * len(c.models)
        if c.transformer:
            epochs = float(c.transformer_params.get("epochs", 3))
            seconds += (1 + c.random_init) * epochs * n * FINETUNE_S_PER_TEXT_EPOCH
        add("classify", c.model_dump() | {"seed": seed}, seconds)
        if recipe.compress is not None:
            add("compress", recipe.compress.model_dump() | {"seed": seed}, n * COMPRESS_S_PER_TEXT)
        add("serving", {"serving": 1}, SERVING_S)
    return plan


def plan_table(plan: list[PlannedStage]):
    """The plan as a rich table, with the total estimate in its caption."""
    from rich.table import Table

    total = sum(p.estimate_s for p in plan)
    table = Table(
        title="lmforge run: plan",
        caption=f"estimate ≈ {_minutes(total)} (measured rates of the default run on 2 quiet "
        "cores, or this run's own earlier times; a busy machine takes longer)",
    )
    for col in ("stage", "action", "why", "estimate"):
        table.add_column(col, justify="right" if col == "estimate" else "left")
    for p in plan:
        table.add_row(p.name, p.action, p.reason, _minutes(p.estimate_s) if p.estimate_s else "-")
    return table


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
