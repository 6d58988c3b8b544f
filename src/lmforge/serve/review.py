"""The review queue: from the prediction log to corrected training data, and back to training.

:func:`export_review` reads the log (predictions + ``/v1/feedback``) and writes the texts most
worth a human look first: (1) feedback that disagrees with the model, (2) the model's least
confident answers. One row per distinct text (its latest prediction); the ``corrected_label``
column is pre-filled with the user's feedback, for the reviewer to confirm or change.

:func:`import_review` turns the reviewed file into a labelled CSV (``text,label,split``) that
``lmforge classify train`` and a recipe's ``classify.data`` take: the original data with its
split kept, a corrected text's label replaced where it sits in ``train``, new texts added to
``train``. A text of the validation or test split is never relabelled or added (that would leak
review decisions into the evaluation); such rows are counted and left out, as are rows without
a decision.
"""

from __future__ import annotations

import csv
from pathlib import Path

import sqlalchemy as sa

from lmforge.errors import LmforgeError
from lmforge.serve.feedback import FEEDBACK_TABLE
from lmforge.serve.store import TABLE, database_url

REVIEW_COLUMNS = ["text", "model_label", "score", "feedback_label", "reason", "corrected_label"]


def export_review(store: str, out: str | Path, limit: int | None = None) -> dict:
    """Write ``out`` (CSV, most useful first); counts by reason."""
    engine = sa.create_engine(database_url(store))
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            if TABLE not in names:
                raise LmforgeError(f"{store}: no prediction log table ({TABLE})")
            predictions = conn.execute(
                sa.text(f"SELECT request_id, text, label, score FROM {TABLE} ORDER BY id")
            ).all()
            feedback = (
                conn.execute(
                    sa.text(f"SELECT request_id, text, label FROM {FEEDBACK_TABLE} ORDER BY id")
                ).all()
                if FEEDBACK_TABLE in names
                else []
            )
    finally:
        engine.dispose()
    latest: dict[str, tuple[str, float]] = {}  # text -> (model label, score), the latest one
    by_request: dict[str, list[str]] = {}
    for request_id, text, label, score in predictions:
        if text is None:
            continue
        latest[text] = (label, float(score or 0.0))
        by_request.setdefault(request_id, []).append(text)
    said: dict[str, str] = {}  # text -> the latest feedback label
    for request_id, text, label in feedback:
        texts = [text] if text else by_request.get(request_id, [])[:1]
        for t in texts:
            said[t] = label
    rows = []
    for text, (label, score) in latest.items():
        user = said.get(text, "")
        reason = "feedback disagrees" if user and user != label else "low confidence"
        rows.append([text, label, f"{score:.4f}", user, reason, user or label])
    for text, user in said.items():  # feedback on a text the log no longer holds
        if text not in latest:
            rows.append([text, "", "", user, "feedback", user])
    rank = {"feedback disagrees": 0, "feedback": 1, "low confidence": 2}
    rows.sort(key=lambda r: (rank[r[4]], float(r[2] or 0)))
    rows = rows[:limit] if limit else rows
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(REVIEW_COLUMNS)
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[4]] = counts.get(r[4], 0) + 1
    return {"rows": len(rows), "by_reason": counts, "out": str(out)}


def import_review(review: str | Path, data: str, out: str | Path, seed: int = 0) -> dict:
    """Merge the reviewed ``review`` CSV into ``data`` (split by ``seed``); write ``out``."""
    from lmforge.classify.data import dedup_key, load_classification_data

    review = Path(review)
    if not review.is_file():
        raise LmforgeError(f"review file not found: {review}")
    ds = load_classification_data(data, seed=seed)
    where: dict[str, str] = {}
    merged: list[list[str]] = []
    for split in ("train", "val", "test"):
        texts, labels = ds.split(split)
        for t, y in zip(texts, labels, strict=True):
            where[dedup_key(t)] = split
            merged.append([t, str(y), split])
    index = {dedup_key(r[0]): i for i, r in enumerate(merged)}
    counts = {"relabelled": 0, "added": 0, "unchanged": 0, "no_decision": 0, "eval_split": 0}
    known = {str(x) for x in ds.label_names}
    with review.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"text", "corrected_label"} - set(reader.fieldnames or [])
        if missing:
            raise LmforgeError(f"{review}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, 2):
            text, label = dedup_key(row["text"] or ""), (row["corrected_label"] or "").strip()
            if not text or not label:
                counts["no_decision"] += 1
                continue
            if label not in known:
                raise LmforgeError(
                    f"{review}:{line}: label {label!r} is not one of {sorted(known)}"
                )
            split = where.get(text)
            if split in ("val", "test"):
                counts["eval_split"] += 1  # never relabel or add the evaluation's texts
            elif split == "train":
                i = index[text]
                counts["unchanged" if merged[i][1] == label else "relabelled"] += 1
                merged[i][1] = label
            else:
                where[text], index[text] = "train", len(merged)
                merged.append([text, label, "train"])
                counts["added"] += 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "split"])
        writer.writerows(merged)
    return {**counts, "rows": len(merged), "out": str(out)}
