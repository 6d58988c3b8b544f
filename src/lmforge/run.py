"""``lmforge run``: every stage of a recipe in order, each skipped when its inputs and config are unchanged.

Stages so far: corpus. Each stage writes its own folder under ``runs/<name>/`` with a
``manifest.json``; a stage whose manifest records the same config hash is not redone
(the corpus builder also resumes a half-finished build from its completion markers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from lmforge.recipe import Recipe


def run_recipe(
    recipe: Recipe, workers: int | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Run all stages; return {stage: manifest}."""
    from lmforge.corpus.pipeline import build_corpus

    console = console or Console()
    run_dir = recipe.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}

    corpus = (
        recipe.corpus if workers is None else recipe.corpus.model_copy(update={"workers": workers})
    )
    console.rule("[bold]corpus")
    results["corpus"] = build_corpus(corpus, run_dir / "corpus")
    counts = results["corpus"]["counts"]
    console.print(
        f"corpus: read {counts['read']:,}, kept {counts['kept']:,}, removed {counts['removed']:,}"
    )
    write_run_report(run_dir, results)
    return results


def write_run_report(run_dir: Path, results: dict[str, Any]) -> Path:
    """``runs/<name>/report.html``: one page linking every stage's own report."""
    links = []
    for stage in results:
        report = run_dir / stage / "report.html"
        if report.exists():
            links.append(f'<li><a href="{stage}/report.html">{stage}</a></li>')
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>lmforge run</title></head><body>"
        f"<h1>lmforge run: {run_dir.name}</h1><ul>{''.join(links)}</ul></body></html>"
    )
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
