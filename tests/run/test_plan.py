"""The plan's time estimates: derived from the recipe's work, calibrated on the measured default run."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.classify.data import load_classification_data
from lmforge.run.plan import plan_run
from lmforge.run.recipe import load_recipe
from lmforge.run.stages import corpus_config

# The default run measured on a fresh clone, 2 quiet cores, fp32, no AMX (docs/benchmarks.md)
MEASURED_S = {"corpus": 8, "tokenizer+tokens": 9, "pretrain": 305, "classify": 317,
              "compress": 177, "serving": 36}  # fmt: skip


@pytest.fixture(scope="module")
def default_split():
    recipe = load_recipe(None)
    c = recipe.classify
    return load_classification_data(c.data, c.text_col, c.label_col, recipe.seed)


def _estimates(recipe, split) -> dict[str, float]:
    plan = plan_run(recipe, corpus_config(recipe), split)
    assert all(p.action == "run" for p in plan)
    seconds = {p.name: p.estimate_s for p in plan}
    seconds["tokenizer+tokens"] = seconds.pop("tokenizer") + seconds.pop("tokens")
    return seconds


def test_the_default_recipe_is_estimated_within_25_percent_of_its_measured_run(
    tmp_path: Path, default_split
) -> None:
    recipe = load_recipe(None).model_copy(update={"runs_dir": str(tmp_path)})
    estimates = _estimates(recipe, default_split)
    assert set(estimates) == set(MEASURED_S)
    for stage, measured in MEASURED_S.items():
        assert abs(estimates[stage] - measured) <= 0.25 * measured, (stage, estimates[stage])


def test_estimates_follow_the_work_the_recipe_asks_for(tmp_path: Path, default_split) -> None:
    base = load_recipe(None).model_copy(update={"runs_dir": str(tmp_path)})
    before = _estimates(base, default_split)
    c = base.classify
    more = base.model_copy(
        update={
            "pretrain": base.pretrain.model_copy(
                update={"max_tokens": 2 * base.pretrain.max_tokens}
            ),
            "classify": c.model_copy(
                update={"transformer_params": c.transformer_params | {"epochs": 4}}
            ),
        }
    )
    after = _estimates(more, default_split)
    assert after["pretrain"] == pytest.approx(2 * before["pretrain"])
    from lmforge.run.estimate import BASELINE_S_PER_TEXT

    finetune = before["classify"] - BASELINE_S_PER_TEXT * len(c.models) * 13_889  # less baselines
    assert after["classify"] - before["classify"] == pytest.approx(finetune, rel=1e-6)
    # a bigger encoder costs more per token: `mini` is ~2.5x tiny's FLOPs
    mini = base.model_copy(update={"pretrain": base.pretrain.model_copy(update={"preset": "mini"})})
    assert 2 < _estimates(mini, default_split)["pretrain"] / before["pretrain"] < 3.5
