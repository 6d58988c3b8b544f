"""``lmforge augment DATA --out OUT``: augmented copies of a labelled file's training rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def augment_command(
    data: Annotated[Path, typer.Argument(help="CSV / JSONL / Parquet with text and label columns")],
    out: Annotated[Path, typer.Option(help="output .csv or .jsonl (originals + copies)")],
    ops: Annotated[
        str,
        typer.Option(
            help="eda (delete,swap,insert,synonym), all (+ mlm if --mlm-model) or a comma list"
        ),
    ] = "eda",
    rate: Annotated[float, typer.Option(help="share of a text's words changed per copy")] = 0.1,
    copies: Annotated[int, typer.Option(help="copies per training row")] = 4,
    seed: Annotated[int, typer.Option(help="same seed + input, same copies")] = 0,
    mlm_model: Annotated[
        Path | None, typer.Option(help="MLM folder (lmforge pretrain) for the 'mlm' op")
    ] = None,
    mlm_top_k: Annotated[int, typer.Option(help="'mlm' draws among this many fillers")] = 10,
    teacher: Annotated[
        Path | None,
        typer.Option(help="classifier folder: drop copies whose predicted label flips"),
    ] = None,
    text_col: Annotated[str, typer.Option(help="text column")] = "text",
    label_col: Annotated[str, typer.Option(help="label column")] = "label",
) -> None:
    """EDA (random deletion, swap, insertion, synonym replacement) and MLM-contextual copies of
    the training rows; val/test rows are copied through untouched, every copy names its origin."""
    from pydantic import ValidationError

    from lmforge.augment.core import AugmentConfig, parse_ops
    from lmforge.augment.files import augment_file
    from lmforge.errors import LmforgeError
    from lmforge.run.recipe import describe_validation_error

    op_list = parse_ops(ops)
    if "mlm" in op_list and mlm_model is None:
        if ops.strip().lower() != "all":
            raise LmforgeError("the 'mlm' operation needs --mlm-model DIR")
        op_list.remove("mlm")
        Console(stderr=True).print("note: --ops all without --mlm-model: the 'mlm' op is left out")
    try:
        config = AugmentConfig(
            ops=op_list,
            rate=rate,
            copies=copies,
            mlm_model=str(mlm_model) if mlm_model else None,
            mlm_top_k=mlm_top_k,
            teacher=str(teacher) if teacher else None,
        )
    except ValidationError as exc:
        raise LmforgeError(describe_validation_error(exc, "augment")) from None
    console = Console()
    stats = augment_file(data, out, config, text_col, label_col, seed, console)
    table = Table(title=f"{data} -> {out}")
    table.add_column("count")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, str(value))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("augment")(augment_command)
