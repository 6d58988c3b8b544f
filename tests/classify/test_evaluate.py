from __future__ import annotations

import json

import pandas as pd
import pytest

from lmforge.classify.data import ClassificationData
from lmforge.classify.estimator import make_model
from lmforge.classify.evaluate import compare, cross_validate, evaluate, few_shot, search


def test_evaluate_writes_predictions(small, tmp_path):
    train_x, train_y, test_x, test_y = small
    model = make_model("nb").fit(train_x, train_y)
    m = evaluate(
        model,
        test_x,
        test_y,
        predictions_path=tmp_path / "p.csv",
        confusion_png=tmp_path / "cm.png",
    )
    df = pd.read_csv(tmp_path / "p.csv")
    assert list(df.columns) == ["text", "gold", "pred", "p_neg", "p_pos"] and len(df) == len(test_x)
    assert m["accuracy"] == pytest.approx((df["gold"] == df["pred"]).mean())
    assert (tmp_path / "cm.png").stat().st_size > 0
    evaluate(model, test_x[:5], test_y[:5], predictions_path=tmp_path / "p.jsonl")
    assert len((tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()) == 5


def test_cv_search_few_shot(small):
    train_x, train_y, test_x, test_y = small
    cv = cross_validate(make_model("svm"), train_x, train_y, k=3)
    assert len(cv["scores"]) == 3 and 0.5 < cv["mean"] <= 1 and cv["std"] >= 0
    grid = search(make_model("nb"), train_x, train_y, kind="grid", cv=2)
    assert len(grid["trials"]) == len(make_model("nb").search_space["alpha"])
    assert grid["best_params"]["alpha"] in make_model("nb").search_space["alpha"]
    rnd = search(make_model("lr"), train_x, train_y, kind="random", trials=2, cv=2)
    assert len(rnd["trials"]) == 2
    rows = few_shot(
        lambda: make_model("nb"), train_x, train_y, test_x, test_y, n_per_class=(16,), seeds=(0, 1)
    )
    assert rows[0]["n_per_class"] == 16 and len(rows[0]["scores"]) == 2


def test_compare_leaderboard(small, tmp_path):
    train_x, train_y, test_x, test_y = small
    data = ClassificationData(
        train_x,
        train_y,
        test_x[:100],
        test_y[:100],
        test_x[100:],
        test_y[100:],
        ["neg", "pos"],
        "sample",
    )
    rows = compare(["nb", "dt"], data, tmp_path)
    assert [
        set(r) >= {"model", "accuracy", "macro_f1", "train_s", "predictions_per_s", "size_bytes"}
        for r in rows
    ] == [True, True]
    assert rows[0]["macro_f1"] >= rows[1]["macro_f1"]
    assert (
        json.loads((tmp_path / "leaderboard.json").read_text())["rows"][0]["model"]
        == rows[0]["model"]
    )
    assert (tmp_path / "leaderboard.png").stat().st_size > 0
    assert (tmp_path / "nb" / "lmforge_model.json").is_file()
