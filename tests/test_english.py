"""English works too: the corpus builder and the classifiers on real English text.

tests/data/english_reviews.csv holds 200 short product, hotel and restaurant reviews written
for these tests (100 positive, 100 negative; each positive review has a negative one on the
same topic, so topic words do not give the label away), with a fixed split column:
120 train, 20 val, 60 test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model
from lmforge.classify.metrics import classification_metrics
from lmforge.cli import app
from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus

REVIEWS = Path(__file__).parent / "data" / "english_reviews.csv"
CHANCE = 0.5  # two balanced classes


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch / OpenMP thread (tests/conftest.py says why)."""


def english_rows() -> list[dict]:
    with REVIEWS.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_corpus_build_keeps_english_and_dedups_it(tmp_path: Path) -> None:
    rows = english_rows()
    texts = [r["text"] for r in rows]
    exact = texts[:10]  # verbatim copies
    near = [t.replace(" the ", " this ", 1) for t in texts[10:20] if " the " in t]  # one word
    inputs = tmp_path / "english.jsonl"
    inputs.write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in texts + exact + near), encoding="utf-8"
    )
    out = tmp_path / "corpus"
    config = CorpusConfig(sources=[{"type": "files", "paths": [str(inputs)]}])  # default steps
    manifest = build_corpus(config, out, LocalExecutor(1))

    counts = manifest["counts"]
    assert (
        counts["read"] == len(texts) + len(exact) + len(near) == counts["kept"] + counts["removed"]
    )
    removed = pd.concat(pd.read_parquet(p) for p in (out / "removed").glob("*.parquet"))
    reasons = removed["reason"].value_counts().to_dict()
    assert reasons.get("exact_duplicate", 0) == len(exact)
    assert reasons.get("near_duplicate", 0) >= len(near) - 1 >= 5
    # the originals themselves survive every quality filter (short English reviews are not junk)
    assert counts["kept"] >= 0.97 * len(texts)
    kept = pd.concat(pd.read_parquet(p) for p in (out / "data").glob("*.parquet"))
    languages = [json.loads(m)["scores"]["lang"] for m in kept["meta"]]
    assert languages.count("en") == len(kept)


@pytest.mark.parametrize("spec", ["nb", "svm", "lr", "svm:features=char"])
def test_classical_models_learn_english_sentiment(spec: str) -> None:
    data = load_classification_data(str(REVIEWS), seed=0)
    assert (len(data.train_texts), len(data.val_texts), len(data.test_texts)) == (120, 20, 60)
    model = make_model(spec).fit(data.train_texts, data.train_labels)
    metrics = classification_metrics(
        data.test_labels, model.predict(data.test_texts), [str(c) for c in model.classes_]
    )
    assert metrics["accuracy"] >= CHANCE + 0.25, metrics  # measured 0.83-0.87 (nb, svm, lr)


def test_cli_trains_evaluates_and_predicts_english(tmp_path: Path) -> None:
    runner = CliRunner()
    model_dir = tmp_path / "nb"
    train = runner.invoke(
        app, ["classify", "train", str(REVIEWS), "--model", "nb", "--out", str(model_dir)]
    )
    assert train.exit_code == 0, train.output
    evaluate = runner.invoke(app, ["classify", "eval", str(model_dir), str(REVIEWS)])
    assert evaluate.exit_code == 0, evaluate.output
    metrics = json.loads((model_dir / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == 60 and metrics["accuracy"] >= CHANCE + 0.25

    unseen = [  # not in the file
        "Excellent quality and it works perfectly, I love it.",
        "Terrible product, it broke after one day and support was rude.",
    ]
    predict = runner.invoke(app, ["predict", str(model_dir), *unseen, "--jsonl"])
    assert predict.exit_code == 0, predict.output
    labels = [json.loads(line)["label"] for line in predict.stdout.splitlines()]
    assert labels == ["pos", "neg"]
