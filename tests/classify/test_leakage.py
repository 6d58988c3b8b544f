"""The leakage guard: test texts seen in training data or in a pre-training corpus are refused."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmforge.classify.data import load_classification_data
from lmforge.classify.leakage import check_leakage, find_leakage
from lmforge.errors import LmforgeError


def _write_csv(path, rows):
    pd.DataFrame(rows, columns=["review", "stars", "split"]).to_csv(path, index=False)


def test_leakage_planted_duplicate_is_reported_and_refused(tmp_path):
    rows = [
        (f"第{i}条评论，质量{'很好' if i % 2 else '很差'}", "good" if i % 2 else "bad", "train")
        for i in range(20)
    ]
    rows += [(f"测试{i}", "good" if i % 2 else "bad", "test") for i in range(6)]
    rows.append(("第3条评论，质量很好", "good", "test"))  # exact copy: dedup keeps it in train
    rows.append(("第5条评论，质量很好 ", "good", "test"))  # copy after strip
    path = tmp_path / "reviews.csv"
    _write_csv(path, rows)
    data = load_classification_data(str(path), text_col="review", label_col="stars")
    assert data.label_names == ["bad", "good"]
    assert not find_leakage(data).leaked  # dedup across splits already removed the copies
    # plant one directly in the test split (e.g. a split made elsewhere)
    data.test_texts.append("第7条评论，质量很好")
    report = find_leakage(data)
    assert report.in_train == ["第7条评论，质量很好"]
    with pytest.raises(LmforgeError, match="leakage"):
        check_leakage(data)
    assert check_leakage(data, allow_leakage=True).leaked


def test_leakage_against_corpus_folder(tmp_path):
    rows = [(f"评论{i}", "a" if i % 2 else "b", "train" if i < 12 else "test") for i in range(16)]
    path = tmp_path / "d.csv"
    _write_csv(path, rows)
    data = load_classification_data(str(path), text_col="review", label_col="stars")
    corpus = tmp_path / "corpus"
    (corpus / "data").mkdir(parents=True)
    # the corpus normalizer rewrote full-width digits: still a match after NFKC
    leaked = data.test_texts[0].replace("1", "１")
    pq.write_table(pa.table({"text": ["无关文本", leaked]}), corpus / "data" / "00000.parquet")
    report = find_leakage(data, corpus)
    assert report.in_corpus == [data.test_texts[0]] and report.corpus_docs == 2
    with pytest.raises(LmforgeError, match="allow-leakage"):
        check_leakage(data, corpus)
    assert check_leakage(data, corpus, allow_leakage=True).in_corpus
