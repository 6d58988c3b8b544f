"""``lmforge ablate``: what each corpus step did to the model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def ablate(
    recipe: Annotated[
        Path | None, typer.Argument(help="recipe YAML (default: the packaged default recipe)")
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            help="comma-separated: raw, full, no-<step> (default: the recipe's ablate.variants, "
            "else raw, full and one leave-one-out variant per step)"
        ),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="pretraining steps per variant (overrides the recipe)")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="corpus/pack processes")] = None,
) -> None:
    """Build corpus variants, pretrain the same model on each, compare held-out loss and
    fine-tuned macro-F1; writes runs/<name>/ablation/report.html. Resumes when rerun."""
    from lmforge.ablate import AblateConfig, run_ablation
    from lmforge.run.recipe import load_recipe

    loaded = load_recipe(recipe)
    if max_steps is not None:
        config = loaded.ablate or AblateConfig()
        # a budget given here replaces the recipe's whole budget (ablate.runner.pretrain_config)
        config = config.model_copy(update={"pretrain": {**config.pretrain, "max_steps": max_steps}})
        loaded = loaded.model_copy(update={"ablate": config})
    names = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    run_ablation(loaded, variants=names, workers=workers)


def register(app: typer.Typer) -> None:
    app.command("ablate")(ablate)
