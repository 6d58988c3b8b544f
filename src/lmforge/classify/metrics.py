"""Classification metrics from a confusion matrix: accuracy, macro P / R / F1, per-class report.

Computed with numpy from the confusion matrix; the tests check every number against
scikit-learn's (``zero_division=0``) on fixed predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def confusion_matrix(y_true, y_pred, labels) -> np.ndarray:
    """``cm[i, j]`` = number of examples of true label ``labels[i]`` predicted as ``labels[j]``."""
    labels = list(labels)
    index = {label: i for i, label in enumerate(labels)}
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    n = len(labels)
    t = np.fromiter((index.get(v, -1) for v in y_true), dtype=np.int64, count=len(y_true))
    p = np.fromiter((index.get(v, -1) for v in y_pred), dtype=np.int64, count=len(y_pred))
    keep = (t >= 0) & (p >= 0)
    return np.bincount(t[keep] * n + p[keep], minlength=n * n).reshape(n, n)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def classification_metrics(y_true, y_pred, labels=None) -> dict:
    """Accuracy, macro precision / recall / F1, per-class report and the confusion matrix.

    ``labels`` fixes the class order (default: sorted union of y_true and y_pred).
    Undefined ratios (no predictions / no support) count as 0, as scikit-learn's
    ``zero_division=0``.
    """
    if labels is None:
        labels = sorted(
            set(np.asarray(y_true, dtype=object).tolist())
            | set(np.asarray(y_pred, dtype=object).tolist())
        )
    labels = list(labels)
    cm = confusion_matrix(y_true, y_pred, labels)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)
    n = len(np.asarray(y_true))
    per_class = {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "n": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": per_class,
        "labels": [str(label) for label in labels],
        "confusion_matrix": cm.tolist(),
    }


def plot_confusion_matrix(cm, labels, path: str | Path, title: str = "confusion matrix") -> Path:
    """Write the confusion matrix (counts, row-normalised colour) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = max(3.5, 0.6 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels=[str(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=[str(x) for x in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
