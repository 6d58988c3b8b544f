"""``lmforge corpus build`` and ``lmforge corpus stats``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from lmforge.errors import LmforgeError
from lmforge.terminal import make_console

corpus_app = typer.Typer(
    help="Build a pre-training corpus: read, normalize, filter, mask PII, deduplicate."
)


@corpus_app.command("build")
def build(
    recipe: Annotated[
        Path | None, typer.Argument(help="recipe YAML (its corpus: section is used)")
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="input path, glob or fsspec URL (repeatable); uses the default steps",
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="output folder or fsspec URL, e.g. s3://bucket/prefix (default: the recipe's "
            "corpus.output.path, else runs/<name>/corpus)"
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="processes (default: all cores)")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="parquet, jsonl or parquet,jsonl")
    ] = None,
    text_field: Annotated[
        str, typer.Option(help="text field/column for jsonl, csv, parquet inputs")
    ] = "text",
    overwrite: Annotated[
        bool, typer.Option(help="replace a corpus built with another config")
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option(help="local or ray (default: the recipe's corpus.executor, else local)"),
    ] = None,
) -> None:
    """Build a corpus from a recipe, or from --input files with the default steps."""
    from lmforge.corpus.config import CorpusConfig, OutputConfig
    from lmforge.corpus.pipeline import build_corpus
    from lmforge.corpus.report import print_summary
    from lmforge.run.recipe import describe_validation_error, load_recipe

    if inputs:
        if recipe is not None:
            raise LmforgeError("give either a RECIPE or --input, not both")
        try:
            config = CorpusConfig(
                sources=[{"type": "files", "paths": inputs, "text_field": text_field}]
            )
        except ValidationError as exc:
            raise LmforgeError(describe_validation_error(exc, "--input")) from None
        out = out or str(Path("runs") / "corpus")
    else:
        from lmforge.run.stages import corpus_config

        loaded = load_recipe(recipe)
        config = corpus_config(loaded, make_console())  # with the classification holdout, as `run`
        out = out or config.output.path or str(loaded.run_dir() / "corpus")
    if workers is not None:
        config = config.model_copy(update={"workers": workers})
    if fmt is not None:
        formats = [f.strip() for f in fmt.split(",") if f.strip()]
        try:
            output = OutputConfig(**(config.output.model_dump() | {"formats": formats}))
        except ValidationError as exc:
            raise LmforgeError(describe_validation_error(exc, "--format")) from None
        config = config.model_copy(update={"output": output})
    if executor is not None:
        config = _with_executor(config, executor)
    manifest = build_corpus(config, out, overwrite=overwrite)
    print_summary(_read_stats(out))
    make_console().print(
        f"corpus: {out}  (report: {out.rstrip('/')}/report.html, {manifest['seconds']:.1f} s)"
        if "seconds" in manifest
        else f"corpus: {out}"
    )
    if "executor" in manifest:
        ran = manifest["executor"]
        make_console().print(
            f"executor: {ran['type']}, {ran['nodes']} node(s), {ran['workers']} workers"
        )


def _with_executor(config, name: str):
    """``--executor``: keep the recipe's settings when it names the same type, else defaults."""
    from lmforge.corpus.config import LocalExecutorConfig, RayExecutorConfig

    kinds = {"local": LocalExecutorConfig, "ray": RayExecutorConfig}
    if name not in kinds:
        raise LmforgeError(f"--executor {name}: expected one of {', '.join(kinds)}")
    if config.executor.type == name:
        return config
    return config.model_copy(update={"executor": kinds[name]()})


def _read_stats(out: str) -> dict:
    """stats.json of a built corpus, in a local folder or at a URL."""
    from lmforge.corpus.storage import open_storage

    with open_storage(out) as storage:
        path = storage.staging / "stats.json"
        try:
            return json.loads(storage.read_text(path))
        except (OSError, ValueError):
            raise LmforgeError(
                f"{out}: no stats.json here; is it a corpus built by lmforge?"
            ) from None


@corpus_app.command("stats")
def stats_command(
    corpus_dir: Annotated[
        str, typer.Argument(help="a folder or URL written by `lmforge corpus build`")
    ],
) -> None:
    """Print the per-step summary of a built corpus."""
    from lmforge.corpus.report import print_summary

    print_summary(_read_stats(corpus_dir))


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
