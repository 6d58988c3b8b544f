"""The last stage of ``lmforge run``: pick the model the run serves and install it in
``runs/<name>/serving/``, so that ``lmforge serve runs/<name>`` serves it.

Candidates are every model the run made: the classify stage's leaderboard (baselines, the
fine-tuned encoder, the ensemble) and the compress stage's students. The choice is by
**validation** macro-F1 (the test split only reports); the students, which the compress stage
scores on test only, are scored on the validation split here. The chosen folder is copied (hard
links where possible) into ``serving/`` with ``serving.json``: what was chosen, why, every
candidate's scores, and the served model benchmarked beside Naive Bayes (latency, throughput,
size) with the same machinery as ``lmforge bench`` — an operator sees at once whether a baseline
would be both more accurate and faster.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from lmforge.classify.estimator import read_model_meta
from lmforge.errors import LmforgeError
from lmforge.run.recipe import Recipe

SERVING_FILE = "serving.json"
NB_NAME = "nb"
# batch 1 (one request at a time) and 32 (a busy server's micro-batch) are what an operator
# compares; `lmforge bench` sweeps more
SWEEP_BATCHES = (1, 32)


def _val_macro_f1(directory: Path, texts: list[str], labels) -> float:
    import numpy as np

    from lmforge.classify.metrics import classification_metrics
    from lmforge.predictor import Predictor

    predictor = Predictor.load(directory)
    proba = predictor.predict_proba(texts)
    pred = np.asarray(predictor.labels)[np.argmax(proba, axis=1)]
    gold = np.asarray(labels).astype(str)
    return float(classification_metrics(gold, pred, sorted(set(gold)))["macro_f1"])


def candidates(recipe: Recipe, data) -> list[dict]:
    """Every model of the run: name, folder, validation and test macro-F1, size."""
    from lmforge.run.classify import folder_name

    run_dir = recipe.run_dir()
    board = json.loads((run_dir / "classify" / "leaderboard.json").read_text(encoding="utf-8"))
    out = []
    for row in board["rows"]:
        folder = run_dir / "classify" / folder_name(row["model"])
        out.append(
            {
                "name": row["model"],
                "dir": str(folder),
                "stage": "classify",
                "val_macro_f1": row.get("val_macro_f1"),
                "test_macro_f1": row["macro_f1"],
                "size_bytes": row.get("size_bytes"),
            }
        )
    manifest_path = run_dir / "compress" / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for v in manifest["variants"]:
            if v["kind"] == "source":
                continue
            out.append(
                {
                    "name": f"compress/{v['name']}",
                    "dir": v["dir"],
                    "stage": "compress",
                    "val_macro_f1": _val_macro_f1(Path(v["dir"]), data.val_texts, data.val_labels),
                    "test_macro_f1": (v.get("test") or {}).get("macro_f1"),
                    "size_bytes": v.get("size_bytes"),
                }
            )
    return out


def choose(cands: list[dict]) -> dict:
    """Best validation macro-F1; on a tie the smaller folder."""
    scored = [c for c in cands if c.get("val_macro_f1") is not None]
    if not scored:
        raise LmforgeError("no model of this run has a validation score to choose by")
    return max(scored, key=lambda c: (c["val_macro_f1"], -(c.get("size_bytes") or 0)))


def install(chosen: Path, folder: Path) -> None:
    """Copy the chosen model folder's files into ``folder`` (hard links where possible)."""
    from lmforge.classify.ensemble import copy_model_folder

    copy_model_folder(chosen, folder)


def choose_and_install(recipe: Recipe, folder: Path, console: Console) -> dict:
    from lmforge.classify.data import load_classification_data
    from lmforge.compress import bench as bench_mod

    c = recipe.classify
    data = load_classification_data(c.data, c.text_col, c.label_col, recipe.seed)
    with console.status("scoring every model of the run on the validation split"):
        cands = candidates(recipe, data)
    chosen = choose(cands)
    install(Path(chosen["dir"]), folder)
    run_dir = recipe.run_dir()
    targets = [str(folder)]
    nb = next((x for x in cands if x["name"] == NB_NAME), None)
    if nb is not None and chosen["name"] != NB_NAME:
        targets.append(nb["dir"])
    latency_n = recipe.compress.latency_n if recipe.compress is not None else 100
    threads = recipe.compress.threads if recipe.compress is not None else 1
    texts, labels = data.test_texts, [str(x) for x in data.test_labels.tolist()]
    with console.status(f"benchmarking the served model beside {NB_NAME}"):
        rows = bench_mod.bench(
            targets, texts, labels, threads=threads, latency_n=latency_n,
            sweep_n=256, batch_sizes=SWEEP_BATCHES,
        )  # fmt: skip
    rows[0]["variant"] = f"served: {chosen['name']}"
    served_meta = read_model_meta(folder)
    doc = {
        "model": chosen["name"],
        "source": chosen["dir"],
        "model_type": served_meta.get("model_type"),
        "chosen_by": "validation macro-F1 (test only reports)",
        "val_macro_f1": chosen["val_macro_f1"],
        "test_macro_f1": chosen["test_macro_f1"],
        "candidates": sorted(cands, key=lambda x: -(x["val_macro_f1"] or 0)),
        "bench": rows,
        "command": f"lmforge serve {run_dir}",
    }
    (folder / SERVING_FILE).write_text(
        json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    console.print(
        f"serving {chosen['name']}: validation macro-F1 {chosen['val_macro_f1']:.4f} "
        f"(best of {len(cands)} models), test {chosen['test_macro_f1']:.4f} → {folder}"
    )
    console.print(bench_mod.rich_table(rows, "served model beside Naive Bayes (test split)"))
    console.print(f"serve it: lmforge serve {run_dir}")
    return doc
