"""The label audit finds labels we flipped on purpose in real reviews."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from lmforge.cli import app


def test_audit_finds_planted_label_flips(tmp_path, reviews):
    n = 1000
    texts = list(reviews.train_texts[:n])
    labels = reviews.train_labels[:n].copy()
    planted = np.random.default_rng(0).choice(n, size=n // 20, replace=False)  # 5 %
    labels[planted] = np.where(labels[planted] == "pos", "neg", "pos")
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(data, index=False)

    out = tmp_path / "audit"
    result = CliRunner().invoke(
        app, ["classify", "audit", str(data), "--out", str(out), "--model", "nb", "--top", "50"]
    )
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "audit.csv")
    assert len(rows) == n and rows["rank"].tolist() == list(range(1, n + 1))
    flagged_rows = set(rows.loc[rows["flagged"], "row"])
    hit = len(flagged_rows & set(planted.tolist()))
    clean_rate = (len(flagged_rows) - hit) / (n - len(planted))
    assert hit > len(planted) / 2  # most planted flips are flagged
    assert hit / len(planted) > 3 * clean_rate  # and far more often than untouched rows
    # a flagged flip suggests its true label back
    for _, r in rows[rows["row"].isin(planted) & rows["flagged"]].iterrows():
        assert r["suggested"] == reviews.train_labels[r["row"]] != r["label"]
    page = (out / "audit.html").read_text(encoding="utf-8")
    assert "Top 50 suspects" in page and rows.loc[0, "text"][:30] in page


def test_audit_keeps_a_text_that_has_two_labels(tmp_path):
    from lmforge.classify.audit import audit_rows

    data = tmp_path / "d.csv"
    pd.DataFrame(
        {
            "text": ["优点：", "优点：", "优点：", " 很好 ", "很好"],
            "label": ["pos", "neg", "pos", "pos", "pos"],
        }
    ).to_csv(data, index=False)
    texts, labels, stats = audit_rows(str(data))
    assert list(zip(texts, labels, strict=True)) == [
        ("优点：", "pos"),
        ("优点：", "neg"),
        ("很好", "pos"),
    ]
    assert stats["texts_under_several_labels"] == 1 and stats["duplicates"] == 2
