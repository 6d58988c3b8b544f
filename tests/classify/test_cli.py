from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from _helpers import run_lmforge
from lmforge.cli import app


@pytest.fixture()
def review_csv(reviews, tmp_path):
    path = tmp_path / "small.csv"
    n = 400
    pd.DataFrame({"review": reviews.train_texts[:n], "sentiment": reviews.train_labels[:n]}).to_csv(
        path, index=False
    )
    return path


def test_cli_train_then_eval(review_csv, tmp_path):
    runner = CliRunner()
    out = tmp_path / "model"
    res = runner.invoke(
        app,
        [
            "classify",
            "train",
            str(review_csv),
            "--model",
            "nb",
            "--out",
            str(out),
            "--text-col",
            "review",
            "--label-col",
            "sentiment",
            "--cv",
            "2",
            "--search",
            "grid",
            "--param",
            "min_df=2",
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "lmforge_model.json").read_text(encoding="utf-8"))
    assert meta["model_type"] == "nb" and meta["label_names"] == ["neg", "pos"]
    assert (
        meta["params"]["min_df"] == 2
        and meta["params"]["alpha"] == meta["search"]["best_params"]["alpha"]
    )
    assert meta["metrics"]["test"]["macro_f1"] > 0.5 and "cv" in meta
    assert (out / "model.skops").is_file() and (out / "predictions.csv").is_file()

    res = runner.invoke(
        app,
        [
            "classify",
            "eval",
            str(out),
            str(review_csv),
            "--text-col",
            "review",
            "--label-col",
            "sentiment",
            "--split",
            "all",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == 400 and (out / "eval" / "confusion_matrix.png").is_file()


def test_cli_user_error_is_one_line(tmp_path):

    proc = run_lmforge("classify", "train", tmp_path / "nope.csv", "--out", tmp_path / "m")
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr
