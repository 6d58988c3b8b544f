"""The ``classify`` stage of ``lmforge run``: keep the eval texts out of the corpus, then train
the baselines and the fine-tuned encoder on one split and write one leaderboard.

Order inside a run:

1. before the corpus is built, :func:`export_heldout` writes the validation and test texts of the
   split (the seed is the recipe's) to ``runs/<name>/heldout/classify-val-test-<hash>.txt`` and
   :func:`with_holdout` adds that file to the corpus's ``decontaminate`` step (inserting one
   before deduplication if the recipe has none). The corpus then holds no copy of any test text,
   the tokenizer and the pretraining never see them, and the leakage guard passes honestly;
2. after pretraining, :func:`run_classify` trains each baseline and the ``transformer`` from the
   pretrain folder (and, if asked, from random init) on the train split, scores val and test,
   saves every model folder under ``runs/<name>/classify/`` and writes ``leaderboard.json`` /
   ``leaderboard.png``. A model whose folder already holds a result for the same stage
   fingerprint is not trained again, so an interrupted stage resumes with the next model.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from lmforge.corpus.config import CorpusConfig
from lmforge.errors import LmforgeError
from lmforge.run.recipe import ClassifyStage
from lmforge.terminal import make_console

HELDOUT_DIR = "heldout"
ROW_FILE = "leaderboard_row.json"
DEDUP_STEPS = ("exact_dedup", "minhash_dedup")


def export_heldout(config: ClassifyStage, seed: int, run_dir: Path) -> Path:
    """Write the split's val + test texts, one per line; the file name carries their hash."""
    from lmforge.classify.data import load_classification_data

    data = load_classification_data(config.data, config.text_col, config.label_col, seed)
    lines = [" ".join(t.split()) for t in data.val_texts + data.test_texts]
    body = "\n".join(line for line in lines if line) + "\n"
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:12]
    path = run_dir / HELDOUT_DIR / f"classify-val-test-{digest}.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
    return path


def with_holdout(corpus: CorpusConfig, eval_file: Path) -> CorpusConfig:
    """The corpus config with ``eval_file`` decontaminated: added to an existing
    ``decontaminate`` step, or a new one (exact + n-gram) placed before deduplication."""
    from lmforge.corpus.decontam import DecontaminateConfig

    steps = list(corpus.steps)
    for i, step in enumerate(steps):
        if step.type == "decontaminate":
            if str(eval_file) not in step.eval_files:
                files = [*step.eval_files, str(eval_file)]
                steps[i] = step.model_copy(update={"eval_files": files})
            break
    else:
        at = next((i for i, s in enumerate(steps) if s.type in DEDUP_STEPS), len(steps))
        steps.insert(at, DecontaminateConfig(eval_files=[str(eval_file)]))
    return corpus.model_copy(update={"steps": steps})


PRETRAINED_NAME = "transformer (pretrained)"
ENSEMBLE_NAME = "ensemble"
RANDOM_INIT_NAME = "transformer (random init)"


def folder_name(name: str) -> str:
    """The model folder under ``runs/<name>/classify/`` for a leaderboard name."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("_")


def model_entries(config: ClassifyStage, pretrain_dir: Path | None) -> list[tuple[str, str, dict]]:
    """(leaderboard name, model type, parameters) for every model the stage trains."""
    from lmforge.classify.estimator import parse_model_spec

    entries = []
    for spec in config.models:
        name, params = parse_model_spec(spec)
        entries.append((spec, name, params))
    if config.transformer:
        if pretrain_dir is None:
            raise LmforgeError(
                "classify.transformer needs a masked-LM pretrain stage (pretrain.objective: mlm); "
                "set classify.transformer: false to train the baselines only"
            )
        params = dict(config.transformer_params)
        entries.append((PRETRAINED_NAME, "transformer", {**params, "init": str(pretrain_dir)}))
        if config.random_init:
            from lmforge.classify.transformer import random_init_params

            scratch = {**params, **random_init_params(pretrain_dir)}
            entries.append((RANDOM_INIT_NAME, "transformer", scratch))
    return entries


def run_classify(
    config: ClassifyStage,
    seed: int,
    run_dir: Path,
    pretrain_dir: Path | None,
    digest: str,
    console: Console | None = None,
) -> dict[str, Any]:
    """Train and score every model; ``runs/<name>/classify/leaderboard.json`` (also returned)."""
    from threadpoolctl import threadpool_limits

    from lmforge.classify.data import load_classification_data
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import leaderboard_table, train_and_evaluate, write_leaderboard
    from lmforge.classify.leakage import check_leakage

    console = console or make_console()
    out = run_dir / "classify"
    data = load_classification_data(config.data, config.text_col, config.label_col, seed)
    if config.augment is not None:
        from lmforge.augment.core import augment_train

        augment = config.augment
        if "mlm" in augment.ops and augment.mlm_model is None and pretrain_dir is not None:
            augment = augment.model_copy(update={"mlm_model": str(pretrain_dir)})
        data = augment_train(data, augment, seed, console)
        console.print(f"augmented the training split: {data.stats['augment']}")
    corpus_dir = run_dir / "corpus"
    leak = check_leakage(
        data, corpus_dir if corpus_dir.is_dir() else None, allow_leakage=config.allow_leakage
    )
    console.print(f"leakage guard: {leak.summary()}")
    rows = []
    for name, model_type, params in model_entries(config, pretrain_dir):
        folder = out / folder_name(name)
        saved = folder / ROW_FILE
        if saved.is_file():
            done = json.loads(saved.read_text(encoding="utf-8"))
            if done.get("fingerprint") == digest:
                console.print(f"{name}: done earlier, macro-F1 {done['row']['macro_f1']:.4f}")
                rows.append(done["row"])
                continue
        model = make_model(model_type, **params)
        with console.status(f"training {name}"):
            if model_type == "transformer":
                _, row = train_and_evaluate(model, data, folder, name=name)
            else:  # scikit-learn's and torch's OpenMP pools fight over few cores
                with threadpool_limits(1):
                    _, row = train_and_evaluate(model, data, folder, name=name)
        saved.write_text(
            json.dumps({"fingerprint": digest, "row": row}, ensure_ascii=False), encoding="utf-8"
        )
        console.print(f"{name}: test macro-F1 {row['macro_f1']:.4f} ({row['train_s']:.0f} s)")
        rows.append(row)
    members = [out / folder_name(name) for name, _, _ in model_entries(config, pretrain_dir)]
    members = [m for m in members if m.name != folder_name(RANDOM_INIT_NAME)]
    if config.ensemble and len(members) >= 2:
        rows.append(_ensemble(members, data, out / ENSEMBLE_NAME, run_dir, digest, console))
    rows.sort(key=lambda r: -r["macro_f1"])
    files = write_leaderboard(rows, out, data)
    doc = json.loads(Path(files["json"]).read_text(encoding="utf-8"))
    doc["leakage"] = leak.to_dict()
    Path(files["json"]).write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    console.print(leaderboard_table(rows, f"{config.data}: test n={len(data.test_texts):,}"))
    return doc


def _ensemble(members, data, folder: Path, run_dir: Path, digest: str, console) -> dict:
    """The members stacked: a logistic regression on their log-odds, fitted on the validation
    split. Its leaderboard row holds the *cross-fitted* validation macro-F1 (the stacker fitted on
    four fifths of the validation texts, scored on the fifth left out, for every fifth), so it
    competes fairly with the members' validation scores; ``weights`` there is each member's share
    of the stacker's coefficients."""
    import time

    from lmforge.classify.ensemble import EnsembleClassifier
    from lmforge.classify.estimator import model_size_bytes
    from lmforge.classify.evaluate import evaluate
    from lmforge.run.state import create_stage_folder, remove_stage_folder

    saved = folder / ROW_FILE
    if saved.is_file():
        done = json.loads(saved.read_text(encoding="utf-8"))
        if done.get("fingerprint") == digest:
            console.print(f"ensemble: done earlier, macro-F1 {done['row']['macro_f1']:.4f}")
            return done["row"]
    if not data.val_texts:
        raise LmforgeError("classify.ensemble needs a validation split to fit its weights on")
    remove_stage_folder(folder, run_dir)
    create_stage_folder(folder)
    start = time.perf_counter()
    with console.status(f"ensemble of {len(members)}: fitting weights on the validation split"):
        model = EnsembleClassifier(members=[str(m) for m in members])
        model.fit(data.val_texts, data.val_labels)
    fit_s = time.perf_counter() - start
    with console.status("ensemble: scoring the test split"):
        test = evaluate(
            model,
            data.test_texts,
            data.test_labels,
            labels=data.label_names,
            predictions_path=folder / "predictions.csv",
            confusion_png=folder / "confusion_matrix.png",
        )
    weights = {m.name: round(float(w), 4) for m, w in zip(members, model.weights_, strict=True)}
    stripped = {k: v for k, v in test.items() if k not in ("predictions_file", "confusion_png")}
    val_f1 = model.cross_fitted_macro_f1_
    model.save(
        folder,
        extra={
            "spec": ENSEMBLE_NAME,
            "data": {"source": data.source, "sizes": data.sizes(), "stats": data.stats},
            "metrics": {"test": stripped, "val": {"macro_f1": val_f1, "cross_fitted": True}},
            "weights_by_member": weights,
            "method": model.method_,
            "train_seconds": fit_s,
        },
    )
    row = {
        "model": ENSEMBLE_NAME,
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "val_macro_f1": val_f1,
        "train_s": fit_s,
        "predictions_per_s": test["predictions_per_s"],
        "size_bytes": model_size_bytes(folder),
        "method": model.method_,
        "weights": weights,
    }
    saved.write_text(
        json.dumps({"fingerprint": digest, "row": row}, ensure_ascii=False), encoding="utf-8"
    )
    used = ", ".join(f"{k} {v:.2f}" for k, v in weights.items() if v > 0)
    console.print(f"ensemble ({model.method_}: {used}): test macro-F1 {row['macro_f1']:.4f}")
    return row
