"""What ``lmforge run`` is about to do, decided before it starts: for each stage of the recipe,
whether it runs, is skipped (unchanged), resumes (interrupted) or continues (pretraining with a
raised budget), why, and about how long it will take (:mod:`.estimate`).

The fingerprints are the same ones the stages record when they finish (:mod:`.state`), so the
plan and the run agree. A stage after one that will rebuild the corpus cannot know its
fingerprint yet (it depends on the corpus's output hash): it is planned to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.run import estimate
from lmforge.run.recipe import PretrainStage, Recipe
from lmforge.run.state import fingerprint, stage_state

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


def _pretrain_seconds(recipe: Recipe, folder: Path, spent: dict[str, float]) -> float:
    vocab_size = recipe.tokenizer.vocab_size if recipe.tokenizer else 8000
    manifest = _read_json(folder / "manifest.json")
    return estimate.pretrain_seconds(recipe.pretrain, vocab_size, manifest, spent)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def plan_run(recipe: Recipe, corpus_config, split=None) -> list[PlannedStage]:
    """Every stage the recipe names, in order, with its action and estimate. ``split``: the
    classification data (:func:`lmforge.classify.data.load_classification_data`) when the
    recipe has a ``classify`` section; its sizes drive the later stages' estimates."""
    from lmforge.corpus.plan import config_hash

    run_dir = recipe.run_dir()
    plan: list[PlannedStage] = []
    folder = run_dir / "corpus"
    manifest = _read_json(folder / "manifest.json")
    n_bytes = estimate.input_bytes(corpus_config)
    took = float(manifest.get("seconds") or estimate.corpus_seconds(n_bytes))
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
        add("tokenizer", recipe.tokenizer, estimate.tokenizer_seconds(n_bytes))
    if recipe.tokenizer is not None and recipe.pack is not None:
        add("tokens", recipe.pack.model_dump() | {"seed": seed}, estimate.tokens_seconds(n_bytes))
    if recipe.tokenizer is not None and recipe.pack is not None and recipe.pretrain is not None:
        config = recipe.pretrain
        pre_upstream = upstream
        folder = run_dir / "pretrain"
        add("pretrain", config.model_dump() | {"seed": seed}, _pretrain_seconds(recipe, folder, {}))
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
            step.estimate_s = _pretrain_seconds(recipe, folder, state["budget"])
    if recipe.classify is not None:
        c = recipe.classify
        train = list(split.train_texts) if split is not None else []
        heldout = len(split.val_texts) + len(split.test_texts) if split is not None else 0
        preset = recipe.pretrain.preset if recipe.pretrain else c.transformer_params.get("preset")
        seconds = estimate.classify_seconds(c, train, preset or "tiny")
        add("classify", c.model_dump() | {"seed": seed}, seconds)
        if recipe.compress is not None:
            compress = recipe.compress.model_dump() | {"seed": seed}
            add("compress", compress, estimate.compress_seconds(len(train)))
        add("serving", {"serving": 1}, estimate.serving_seconds(heldout))
    return plan


def plan_table(plan: list[PlannedStage]):
    """The plan as a rich table, with the total estimate in its caption."""
    from rich.table import Table

    total = sum(p.estimate_s for p in plan)
    table = Table(
        title="lmforge run: plan",
        caption=f"estimate ≈ {_minutes(total)} (rates the default run measured on 2 quiet cores "
        "without AMX, fp32, or this run's own earlier times; a busy machine takes longer)",
    )
    for col in ("stage", "action", "why", "estimate"):
        table.add_column(col, justify="right" if col == "estimate" else "left")
    for p in plan:
        table.add_row(p.name, p.action, p.reason, _minutes(p.estimate_s) if p.estimate_s else "-")
    return table


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
