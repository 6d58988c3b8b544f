"""``lmforge feedback export|import``: the prediction log's review queue and its way back into
training data (:mod:`lmforge.serve.review`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    feedback_app = typer.Typer(help="Review queue from the prediction log; corrections to data.")
    app.add_typer(feedback_app, name="feedback")

    @feedback_app.command("export")
    def export_cmd(
        store: str = typer.Argument(..., help="the prediction log (SQLite file or SQL URL)"),
        out: Path = typer.Option(..., "--out", "-o", help="review CSV to write"),
        limit: int = typer.Option(None, "--limit", help="only the first N rows"),
    ) -> None:
        """Texts most worth a look first: feedback that disagrees, then low confidence."""
        from lmforge.serve.review import export_review

        result = export_review(store, out, limit)
        reasons = ", ".join(f"{n} {r}" for r, n in result["by_reason"].items()) or "none"
        Console().print(f"wrote {result['rows']:,} rows to {out} ({reasons})")

    @feedback_app.command("import")
    def import_cmd(
        review: Path = typer.Argument(..., help="the reviewed CSV (corrected_label filled in)"),
        data: str = typer.Option(..., "--data", help="the original labelled data"),
        out: Path = typer.Option(..., "--out", "-o", help="merged CSV (text,label,split)"),
        seed: int = typer.Option(0, "--seed", help="the split seed of the original data"),
    ) -> None:
        """Merge corrections into DATA's train split; evaluation texts are never touched."""
        from lmforge.serve.review import import_review

        r = import_review(review, data, out, seed)
        Console().print(
            f"wrote {r['rows']:,} rows to {out}: {r['relabelled']} relabelled, {r['added']} "
            f"added, {r['unchanged']} unchanged, {r['eval_split']} left out (val/test text), "
            f"{r['no_decision']} without a decision"
        )
