from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from lmforge.classify.metrics import classification_metrics, confusion_matrix, plot_confusion_matrix

CASES = [
    # binary strings
    (
        ["pos", "neg", "pos", "pos", "neg", "neg", "pos"],
        ["pos", "pos", "pos", "neg", "neg", "neg", "neg"],
    ),
    # multi-class, one class never predicted (zero division), one never true
    ([0, 1, 2, 2, 1, 0, 0, 2, 1, 1], [0, 2, 2, 2, 0, 0, 3, 1, 1, 1]),
]


@pytest.mark.parametrize(("y_true", "y_pred"), CASES)
def test_metrics_equal_sklearn(y_true, y_pred):
    labels = sorted(set(y_true) | set(y_pred))
    m = classification_metrics(y_true, y_pred, labels)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for ours, avg_name in (
        ("macro_precision", "precision"),
        ("macro_recall", "recall"),
        ("macro_f1", "f1"),
    ):
        fn = getattr(skm, f"{avg_name}_score")
        assert m[ours] == pytest.approx(
            fn(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        )
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        row = m["per_class"][str(label)]
        assert row["precision"] == pytest.approx(p[i])
        assert row["recall"] == pytest.approx(r[i])
        assert row["f1"] == pytest.approx(f[i])
        assert row["support"] == s[i]
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, labels),
        skm.confusion_matrix(y_true, y_pred, labels=labels),
    )


def test_confusion_plot(tmp_path):
    path = plot_confusion_matrix([[5, 1], [2, 7]], ["neg", "pos"], tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
