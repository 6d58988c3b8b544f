"""Terminal tables stay readable when the output is a file or a pipe (a run's log, CI):
rich assumes 80 columns there and cut headers to 3 characters (`accur…`, `macro…`)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from lmforge.classify.evaluate import LEADERBOARD_HEADERS, leaderboard_table
from lmforge.cli import app
from lmforge.compress.bench import rich_table

LEADERBOARD = [
    {"model": m, "accuracy": 0.8453, "macro_f1": 0.8452, "val_macro_f1": 0.8571, "train_s": 12.3,
     "predictions_per_s": 12345, "size_bytes": 1_234_567}
    for m in ("nb", "svm", "transformer (pretrained)")
]  # fmt: skip
BENCH = [
    {"variant": f"runs/default/compress/{name}", "backend": backend, "size_bytes": size, "p50_ms": p50, "p99_ms": p50 * 2,
     "throughput_32": 900.0, "best_batch": 64, "throughput_best": 1500.0,
     "peak_rss_bytes": 400_000_000, "accuracy": 0.8149, "macro_f1": 0.8147,
     "x_faster_p50": 39.0, "x_smaller": 20.1, "f1_delta_points": -0.12}
    for name, backend, size, p50 in [("teacher", "torch", 22_000_000, 30.0),
                                     ("student-textcnn-onnx-int8", "onnx", 1_120_000, 0.8)]
]  # fmt: skip
BENCH_HEADERS = ["p50 ms (bs 1)", "best batch: texts/s", "accuracy", "macro-F1", "× faster p50"]


def test_rich_alone_cuts_headers_in_a_file() -> None:
    """What the log showed before: rich's own Console, not a terminal, 80 columns."""
    console = Console(file=io.StringIO())
    console.print(leaderboard_table(LEADERBOARD))
    assert "accur…" in console.file.getvalue()


def test_tables_keep_every_header_in_a_file() -> None:
    from lmforge.terminal import make_console

    out = io.StringIO()
    console = make_console(file=out)
    assert not console.is_terminal and console.width == 80
    console.print(leaderboard_table(LEADERBOARD))
    console.print(rich_table(BENCH))
    console.rule("after the tables")
    text = out.getvalue()
    assert "…" not in text
    for header in [*LEADERBOARD_HEADERS, *BENCH_HEADERS, "student-textcnn-onnx-int8"]:
        assert header in text, header
    # every row of a table is one line; the rule after it still has the console's width
    assert sum("transformer (pretrained)" in line for line in text.splitlines()) == 1
    assert len(text.splitlines()[-1]) == 80 and console.width == 80


def test_cli_leaderboard_piped_keeps_its_headers(tmp_path: Path) -> None:
    data = Path(__file__).parent / "data" / "english_reviews.csv"
    result = CliRunner().invoke(  # CliRunner's stdout is a pipe-like stream, not a terminal
        app,
        ["classify", "compare", str(data), "--models", "nb,svm:features=char",
         "--out", str(tmp_path / "compare")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for header in LEADERBOARD_HEADERS:
        assert header in result.stdout, header
