"""``lmforge run``: the whole recipe, stage after stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def run(
    recipe: Annotated[
        Path | None, typer.Argument(help="recipe YAML (default: the packaged recipes/default.yaml)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="processes for parallel stages (default: all cores)")
    ] = None,
) -> None:
    """Run every stage of a recipe; unchanged stages are skipped, interrupted ones resume."""
    from lmforge.run.recipe import load_recipe
    from lmforge.run.stages import run_recipe
    from lmforge.terminal import make_console

    loaded = load_recipe(recipe)
    run_recipe(loaded, workers=workers, console=make_console())
    typer.echo(f"run folder: {loaded.run_dir()}  (report: {loaded.run_dir() / 'report.html'})")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
