from __future__ import annotations

import pandas as pd
import pytest

from lmforge.classify.data import clean_labelled, load_classification_data
from lmforge.classify.leakage import find_leakage
from lmforge.errors import LmforgeError


def test_clean_drops_duplicates_conflicts_and_empty():
    texts = [" 好 ", "好", "差", "优点：", "优点：", "  ", "一般"]
    labels = ["pos", "pos", "neg", "pos", "neg", "pos", "neg"]
    kept, kept_labels, stats = clean_labelled(texts, labels)
    assert kept == ["好", "差", "一般"]
    assert kept_labels == ["pos", "neg", "neg"]
    assert stats == {"input": 7, "empty": 1, "duplicates": 2, "conflicting_labels": 1, "kept": 3}


def test_builtin_reviews_are_deduplicated_and_split(reviews):
    assert reviews.label_names == ["neg", "pos"]
    assert reviews.stats["conflicting_labels"] == 47
    sizes = reviews.sizes()
    assert sum(sizes.values()) == reviews.stats["kept"] < reviews.stats["input"] / 2 + 100
    assert sizes["test"] == pytest.approx(0.1 * reviews.stats["kept"], abs=2)
    every = reviews.train_texts + reviews.val_texts + reviews.test_texts
    assert len(set(every)) == len(every)
    # stratified: the label ratio of test matches train
    ratio = lambda y: (y == "pos").mean()  # noqa: E731
    assert ratio(reviews.test_labels) == pytest.approx(ratio(reviews.train_labels), abs=0.01)
    report = find_leakage(reviews)
    assert not report.leaked  # exact copies were removed before splitting
    assert len(report.near_in_train) < 10  # whitespace / full-width variants: reported, not refused


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_file_formats_multiclass(tmp_path, fmt):
    df = pd.DataFrame({"t": [f"文本{i}" for i in range(30)], "y": [i % 3 for i in range(30)]})
    path = tmp_path / f"d.{fmt}"
    df.to_json(
        path, orient="records", lines=True, force_ascii=False
    ) if fmt == "jsonl" else df.to_parquet(path)
    data = load_classification_data(str(path), text_col="t", label_col="y", seed=1)
    assert data.label_names == ["0", "1", "2"]
    assert data.sizes() == {"train": 24, "val": 3, "test": 3}


def test_user_errors_are_one_line(tmp_path):
    with pytest.raises(LmforgeError, match="not found"):
        load_classification_data(str(tmp_path / "missing.csv"))
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": ["a", "b"], "y": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(LmforgeError, match="--label-col"):
        load_classification_data(str(path))
