"""``lmforge collect`` (a recipe's ``collect:`` section into its store) and
``lmforge demo-shop`` (a local shop to collect from)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmforge.errors import LmforgeError


def collect(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML with a collect: section")],
    every: Annotated[
        str | None, typer.Option(help="run a pass every interval (30m, 1h, 1d) until Ctrl-C")
    ] = None,
    passes: Annotated[int | None, typer.Option(help="with --every: stop after N passes")] = None,
    store: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the store (default: the recipe's)")
    ] = None,
) -> None:
    """One incremental pass over the recipe's collect sources (or one every --every)."""
    from lmforge.collect.runner import parse_interval, run_collect, run_periodic
    from lmforge.run.recipe import load_recipe

    loaded = load_recipe(recipe)
    config = getattr(loaded, "collect", None)
    if config is None:
        raise LmforgeError(f"{recipe}: the recipe has no collect: section")
    if store is not None:
        config = config.model_copy(update={"store": store})
    if passes is not None and every is None:
        raise LmforgeError("--passes needs --every")
    if every is None:
        run_collect(config, loaded.run_dir())
    else:
        run_periodic(config, loaded.run_dir(), parse_interval(every), passes)


def demo_shop(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8765,
    host: Annotated[str, typer.Option(help="address to bind (keep it local)")] = "127.0.0.1",
) -> None:
    """Serve the built-in reviews as a shop: a paginated JSON API and HTML product pages."""
    from lmforge.collect.demo_shop import serve

    typer.echo(f"demo shop on http://{host}:{port}/  (API: /api/reviews?page=1; Ctrl-C stops)")
    serve(host, port)


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
    app.command("demo-shop")(demo_shop)
