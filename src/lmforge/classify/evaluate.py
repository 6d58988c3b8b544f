"""Evaluation of any :class:`~lmforge.classify.estimator.TextClassifier`.

- :func:`evaluate`: metrics on a labelled set + a predictions file (text, gold, pred, p_<label>);
- :func:`cross_validate`: stratified k-fold macro-F1, mean ± std;
- :func:`search`: grid / random search over the model's declared space, scored on CV folds of
  the training data only (the test split is never seen);
- :func:`few_shot`: N examples per class, several seeds, mean ± std of test macro-F1;
- :func:`compare`: train + evaluate + save several models -> leaderboard rows, a rich table,
  a bar plot PNG and ``leaderboard.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lmforge.classify.data import ClassificationData
from lmforge.classify.estimator import TextClassifier, make_model, model_size_bytes
from lmforge.classify.metrics import classification_metrics, plot_confusion_matrix
from lmforge.errors import LmforgeError

# ------------------------------------------------------------------------------ evaluate


def write_predictions(path: str | Path, texts, gold, pred, proba, classes) -> Path:
    """CSV or JSONL (by suffix) with text, gold, pred and one ``p_<label>`` column per class."""
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"text": list(texts), "gold": list(gold), "pred": list(pred)})
    for j, c in enumerate(classes):
        df[f"p_{c}"] = np.round(proba[:, j], 6)
    if path.suffix.lower() in (".jsonl", ".json"):
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    elif path.suffix.lower() == ".csv":
        df.to_csv(path, index=False)
    else:
        raise LmforgeError(f"predictions file must end in .csv or .jsonl, got {path.name}")
    return path


def evaluate(
    model: TextClassifier,
    texts,
    y,
    predictions_path: str | Path | None = None,
    confusion_png: str | Path | None = None,
    labels: Sequence | None = None,
) -> dict:
    """Metrics of a fitted model on (texts, y); optionally write predictions and a confusion PNG.

    Returns :func:`~lmforge.classify.metrics.classification_metrics` plus ``predict_seconds``
    and ``predictions_per_s``.
    """
    texts = list(texts)
    model.predict_proba(["warm-up 预热"])  # lazy loads (jieba's dictionary) are not timed
    from lmforge.classify.classical import forget_tokens

    forget_tokens(texts)  # an earlier model in the same process must not speed this one up
    start = time.perf_counter()
    proba = model.predict_proba(texts)
    seconds = time.perf_counter() - start
    classes = np.asarray(model.classes_)
    pred = classes[np.argmax(proba, axis=1)]
    if labels is None:
        labels = [c for c in classes.tolist()]
        labels += sorted(set(np.asarray(y).tolist()) - set(labels), key=str)
    metrics = classification_metrics(y, pred, labels)
    metrics["predict_seconds"] = seconds
    metrics["predictions_per_s"] = len(texts) / seconds if seconds > 0 else float("inf")
    if predictions_path is not None:
        metrics["predictions_file"] = str(
            write_predictions(predictions_path, texts, y, pred, proba, classes)
        )
    if confusion_png is not None:
        metrics["confusion_png"] = str(
            plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], confusion_png)
        )
    return metrics


# ------------------------------------------------------------------------------ CV and search


def _folds(k: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    if k < 2:
        raise LmforgeError(f"--cv needs at least 2 folds, got {k}")
    return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)


def cross_validate(
    model: TextClassifier, texts, y, k: int = 5, seed: int = 0, scoring: str = "f1_macro"
) -> dict:
    """Stratified k-fold scores of a fresh clone of ``model`` per fold: mean ± std."""
    from sklearn.model_selection import cross_val_score

    start = time.perf_counter()
    scores = cross_val_score(
        model,
        np.asarray(list(texts), dtype=object),
        np.asarray(y),
        cv=_folds(k, seed),
        scoring=scoring,
    )
    return {
        "k": k,
        "seed": seed,
        "scoring": scoring,
        "scores": [float(s) for s in scores],
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "seconds": time.perf_counter() - start,
    }


def search(
    model: TextClassifier,
    texts,
    y,
    space: dict | None = None,
    kind: str = "grid",
    trials: int = 10,
    cv: int = 3,
    seed: int = 0,
    scoring: str = "f1_macro",
) -> dict:
    """Hyper-parameter search on CV folds of (texts, y) -- pass training data only.

    ``space`` defaults to the model class's ``search_space`` (grid) / ``random_space`` (random,
    falling back to ``search_space``). Returns best params, best CV score, every trial, and the
    best model refitted on all of (texts, y) under ``"best_model"``.
    """
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    if kind == "grid":
        space = space or type(model).search_space
    elif kind == "random":
        space = space or type(model).random_space or type(model).search_space
    else:
        raise LmforgeError(f"--search must be 'grid' or 'random', got {kind!r}")
    if not space:
        raise LmforgeError(f"model {model.model_type!r} declares no search space")
    unknown = sorted(set(space) - set(model.get_params()))
    if unknown:
        raise LmforgeError(f"search space names unknown parameters {unknown}")
    if kind == "grid":
        searcher = GridSearchCV(model, space, scoring=scoring, cv=_folds(cv, seed), refit=True)
    else:
        searcher = RandomizedSearchCV(
            model,
            space,
            n_iter=trials,
            scoring=scoring,
            cv=_folds(cv, seed),
            refit=True,
            random_state=seed,
        )
    start = time.perf_counter()
    searcher.fit(np.asarray(list(texts), dtype=object), np.asarray(y))
    res = searcher.cv_results_
    trials_out = [
        {"params": {k: _plain(v) for k, v in p.items()}, "mean": float(m), "std": float(s)}
        for p, m, s in zip(
            res["params"], res["mean_test_score"], res["std_test_score"], strict=True
        )
    ]
    return {
        "kind": kind,
        "cv": cv,
        "scoring": scoring,
        "best_params": {k: _plain(v) for k, v in searcher.best_params_.items()},
        "best_score": float(searcher.best_score_),
        "trials": trials_out,
        "seconds": time.perf_counter() - start,
        "best_model": searcher.best_estimator_,
    }


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


# ------------------------------------------------------------------------------ few-shot


def sample_per_class(texts, y, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` examples of each class (all of a class if it has fewer), drawn with ``seed``."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    idx = []
    for c in sorted(set(y.tolist()), key=str):
        members = np.flatnonzero(y == c)
        idx.extend(rng.choice(members, size=min(n, len(members)), replace=False).tolist())
    idx = rng.permutation(np.asarray(idx))
    texts = list(texts)
    return [texts[i] for i in idx], y[idx]


def few_shot(
    model_factory: Callable[[], TextClassifier],
    train_texts,
    train_y,
    test_texts,
    test_y,
    n_per_class: Sequence[int] = (16, 64, 256),
    seeds: Sequence[int] = (0, 1, 2),
) -> list[dict]:
    """Train a fresh model on N examples per class for each seed; test macro-F1 mean ± std per N."""
    rows = []
    for n in n_per_class:
        scores = []
        for seed in seeds:
            texts, y = sample_per_class(train_texts, train_y, n, seed)
            model = model_factory().fit(texts, y)
            m = classification_metrics(
                test_y, model.predict(test_texts), sorted(set(np.asarray(test_y).tolist()), key=str)
            )
            scores.append(m["macro_f1"])
        rows.append(
            {
                "n_per_class": int(n),
                "seeds": list(seeds),
                "scores": scores,
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
            }
        )
    return rows


# ------------------------------------------------------------------------------ leaderboard

LEADERBOARD_COLUMNS = (
    "model",
    "accuracy",
    "macro_f1",
    "val_macro_f1",
    "train_s",
    "predictions_per_s",
    "size_bytes",
)


def train_and_evaluate(
    spec: str | TextClassifier,
    data: ClassificationData,
    out_dir: str | Path | None = None,
    extra_meta: dict | None = None,
    name: str | None = None,
) -> tuple[TextClassifier, dict]:
    """Fit on train, evaluate on val and test, save (if ``out_dir``): (model, leaderboard row).
    ``name`` is the model's name on the leaderboard (default: the spec, or its model type)."""
    model = make_model(spec) if isinstance(spec, str) else spec
    name = name or (spec if isinstance(spec, str) else model.model_type)
    start = time.perf_counter()
    fit_kwargs = {}
    if getattr(model, "uses_validation", False) and data.val_texts:
        fit_kwargs = {"X_val": data.val_texts, "y_val": data.val_labels}
    model.fit(data.train_texts, data.train_labels, **fit_kwargs)
    train_s = time.perf_counter() - start
    out = Path(out_dir) if out_dir is not None else None
    val = (
        evaluate(model, data.val_texts, data.val_labels, labels=data.label_names)
        if data.val_texts
        else None
    )
    test = evaluate(
        model,
        data.test_texts,
        data.test_labels,
        labels=data.label_names,
        predictions_path=out / "predictions.csv" if out else None,
        confusion_png=out / "confusion_matrix.png" if out else None,
    )
    row = {
        "model": name,
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "val_macro_f1": val["macro_f1"] if val else None,
        "train_s": train_s,
        "predictions_per_s": test["predictions_per_s"],
        "size_bytes": None,
    }
    if out is not None:
        meta = {
            "spec": name,
            "data": {"source": data.source, "sizes": data.sizes(), "stats": data.stats},
            "metrics": {"test": _strip(test), "val": _strip(val) if val else None},
            "train_seconds": train_s,
        }
        meta.update(extra_meta or {})
        model.save(out, extra=meta)
        row["size_bytes"] = model_size_bytes(out)
    return model, row


def _strip(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("predictions_file", "confusion_png")}


def compare(
    models: Sequence[str],
    data: ClassificationData,
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train every model spec on ``data.train``, evaluate on test: leaderboard rows (by macro-F1).

    With ``out_dir``: each model saved under ``out_dir/<spec>/``, plus ``leaderboard.json`` and
    ``leaderboard.png``.
    """
    rows = []
    out = Path(out_dir) if out_dir is not None else None
    for spec in models:
        if progress:
            progress(spec)
        folder = out / spec.replace(":", "_").replace("=", "-") if out else None
        _, row = train_and_evaluate(spec, data, folder)
        rows.append(row)
    rows.sort(key=lambda r: -r["macro_f1"])
    if out is not None:
        write_leaderboard(rows, out, data)
    return rows


def write_leaderboard(
    rows: list[dict], out_dir: str | Path, data: ClassificationData | None = None
) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"rows": rows}
    if data is not None:
        doc["data"] = {"source": data.source, "sizes": data.sizes(), "seed": data.stats.get("seed")}
    (out / "leaderboard.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    plot_leaderboard(rows, out / "leaderboard.png")
    return {"json": str(out / "leaderboard.json"), "png": str(out / "leaderboard.png")}


def plot_leaderboard(rows: list[dict], path: str | Path) -> Path:
    """Horizontal bars of test macro-F1 (and accuracy) per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["macro_f1"])
    names = [r["model"] for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    ax.barh(y + 0.2, [r["macro_f1"] for r in rows], height=0.4, label="macro-F1")
    ax.barh(y - 0.2, [r["accuracy"] for r in rows], height=0.4, label="accuracy", alpha=0.6)
    for i, r in enumerate(rows):
        ax.text(r["macro_f1"] + 0.003, i + 0.2, f"{r['macro_f1']:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, labels=names)
    low = min(min(r["macro_f1"], r["accuracy"]) for r in rows) if rows else 0
    ax.set_xlim(max(0.0, low - 0.1), 1.0)
    ax.set_xlabel("test score")
    ax.legend(loc="lower right")
    ax.set_title("classification leaderboard")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def leaderboard_table(rows: list[dict], title: str = "leaderboard (test split)"):
    """A rich Table of leaderboard rows."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column(LEADERBOARD_HEADERS[0], no_wrap=True)
    for col in LEADERBOARD_HEADERS[1:]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*leaderboard_cells(r))
    return table


LEADERBOARD_HEADERS = ("model", "accuracy", "macro-F1", "val macro-F1", "train s", "pred/s", "size")


def leaderboard_cells(r: dict) -> list[str]:
    """One leaderboard row as display strings, in :data:`LEADERBOARD_HEADERS` order."""
    return [
        r["model"],
        f"{r['accuracy']:.4f}",
        f"{r['macro_f1']:.4f}",
        "-" if r.get("val_macro_f1") is None else f"{r['val_macro_f1']:.4f}",
        f"{r['train_s']:.1f}",
        f"{r['predictions_per_s']:,.0f}",
        "-" if r.get("size_bytes") is None else human_bytes(r["size_bytes"]),
    ]


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
