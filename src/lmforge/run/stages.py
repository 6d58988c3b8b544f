"""``lmforge run``: every stage of a recipe in order, each skipped when its inputs and config are
unchanged.

Stages: corpus → tokenizer → tokens (pack) → pretrain → classify → compress → serving. Each
writes its own folder under ``runs/<name>/``. A stage's *fingerprint* is the hash of its own
config and of the fingerprint of the stage it reads (:mod:`.state`); a stage whose recorded
fingerprint matches is skipped. An interrupted pretraining resumes from its checkpoint, an
interrupted classify stage from the next model; pretraining whose corpus, tokenizer and settings
are unchanged but whose budget was raised continues from the previous run's checkpoint instead
of starting over. Before anything runs the plan (:mod:`.plan`) is printed with a time estimate;
each stage's wall time goes into the report. With a ``classify`` section the split's validation
and test texts are taken out of the corpus before it is built (:mod:`.classify`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from lmforge.errors import LmforgeError
from lmforge.run.memory import PeakRSS
from lmforge.run.plan import PlannedStage, budget_of, plan_run, plan_table
from lmforge.run.recipe import Recipe
from lmforge.run.state import (
    create_stage_folder,
    is_ours,
    mark_stage,
    remove_stage_folder,
    update_stage,
)


def corpus_config(recipe: Recipe, console: Console | None = None):
    """The recipe's corpus section, plus the classification split's val + test texts as a
    decontamination file when the recipe has a ``classify`` section that holds them out."""
    corpus = recipe.corpus
    if recipe.classify is not None and recipe.classify.holdout_from_corpus:
        from lmforge.run.classify import export_heldout, with_holdout

        heldout = export_heldout(recipe.classify, recipe.seed, recipe.run_dir())
        corpus = with_holdout(corpus, heldout)
        if console is not None:
            console.print(f"classification val + test texts held out of the corpus: {heldout}")
    return corpus


def _classification_split(recipe: Recipe):
    """The recipe's classification split (its sizes drive the plan's estimates), or None."""
    if recipe.classify is None:
        return None
    from lmforge.classify.data import load_classification_data

    c = recipe.classify
    return load_classification_data(c.data, c.text_col, c.label_col, recipe.seed)


def run_recipe(
    recipe: Recipe, workers: int | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Print the plan, then run every stage the recipe names; return {stage: summary}."""
    console = console or Console()
    if recipe.corpus.output.path is not None:
        raise LmforgeError(
            "corpus.output.path is for `lmforge corpus build`: `lmforge run` keeps the corpus "
            f"in {recipe.run_dir() / 'corpus'} for the stages after it; remove the key"
        )
    run_dir = recipe.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    collected = None
    if recipe.collect is not None:  # one incremental pass into the store the corpus reads
        console.rule("[bold]collect")
        start = time.perf_counter()
        with PeakRSS() as collect_peak:
            collected = _collect(recipe, run_dir, console)
        collect_seconds = round(time.perf_counter() - start, 1)
    corpus = corpus_config(recipe, console)
    if workers is not None:
        corpus = corpus.model_copy(update={"workers": workers})
    plan = plan_run(recipe, corpus, _classification_split(recipe))
    console.print(plan_table(plan))

    results: dict[str, Any] = {"timings": []}
    if collected is not None:
        results["collect"] = collected
        results["timings"].append(
            {
                "stage": "collect",
                "action": "pass",
                "seconds": collect_seconds,
                "peak_rss_bytes": collect_peak.bytes,
            }
        )
    upstream = ""
    for step in plan:
        console.rule(f"[bold]{step.name}")
        start = time.perf_counter()
        with PeakRSS() as peak:  # this process and its workers, sampled while the stage runs
            if step.name == "corpus":
                upstream = _corpus(corpus, step, console, results)
            else:
                upstream = STAGES[step.name](recipe, step, upstream, workers, console, results)
        seconds = time.perf_counter() - start
        results["timings"].append(
            {
                "stage": step.name,
                "action": step.action,
                "seconds": round(seconds, 1),
                "peak_rss_bytes": peak.bytes,
            }
        )
        if step.action != "skip":  # a skipped stage keeps the figure of the run that built it
            update_stage(step.folder, peak_rss_bytes=peak.bytes)
        console.print(
            f"{step.name}: {step.action} · {seconds:.0f} s · peak RSS {peak.bytes / 2**30:.2f} GiB"
        )
    write_run_report(run_dir, results)
    return results


def _collect(recipe: Recipe, run_dir: Path, console: Console) -> dict[str, Any]:
    """One incremental collect pass. New rows make the corpus built from the store stale: its
    folder goes (only one lmforge made), and the corpus and every later stage are rebuilt."""
    from lmforge.collect.runner import run_collect

    summary = run_collect(recipe.collect, run_dir, console)
    corpus = run_dir / "corpus"
    if summary["new"] and corpus.exists():
        console.print(f"collect: {summary['new']:,} new rows, rebuilding {corpus}")
        remove_stage_folder(corpus, run_dir)
    return summary


def _done(folder: Path, digest: str, start: float, **extra: Any) -> None:
    mark_stage(folder, digest, "done", seconds=round(time.perf_counter() - start, 1), **extra)


def _fresh(step: PlannedStage, run_dir: Path) -> None:
    """Clear the stage folder for a rebuild (only one lmforge made) and mark it as ours."""
    remove_stage_folder(step.folder, run_dir)
    create_stage_folder(step.folder)


def _corpus(corpus, step: PlannedStage, console: Console, results: dict) -> str:
    from lmforge.corpus.pipeline import build_corpus

    folder = create_stage_folder(step.folder)  # marked when new; a user's folder stays unmarked
    # a corpus built with another config is rebuilt in a corpus folder lmforge made; anywhere
    # else build_corpus refuses, as `lmforge corpus build` does
    results["corpus"] = build_corpus(corpus, folder, overwrite=is_ours(folder))
    counts = results["corpus"]["counts"]
    console.print(
        f"corpus: read {counts['read']:,}, kept {counts['kept']:,}, removed {counts['removed']:,}"
    )
    digest = results["corpus"]["output_hash"]
    if step.action != "skip":  # a skipped corpus keeps the state (time, peak RSS) it was built with
        mark_stage(folder, digest, "done", seconds=results["corpus"].get("seconds"))
    return digest


def _digest(step: PlannedStage, config: Any, upstream: str) -> str:
    from lmforge.run.state import fingerprint

    # a stage planned before the corpus was rebuilt learns its fingerprint now
    return step.digest or fingerprint(config, upstream)


def _tokenizer(recipe, step, upstream, workers, console, results) -> str:
    from lmforge.tokenizer.folder import copy_tokenizer
    from lmforge.tokenizer.train import train_from_corpus

    config, folder, run_dir = recipe.tokenizer, step.folder, recipe.run_dir()
    digest = _digest(step, config, upstream)
    if step.action != "skip":
        start = time.perf_counter()
        _fresh(step, run_dir)
        if config.from_folder:
            copy_tokenizer(config.from_folder, folder)
        else:
            train_from_corpus(
                run_dir / "corpus",
                kind=config.kind,
                vocab_size=config.vocab_size,
                out_dir=folder,
                lowercase=config.lowercase,
                min_frequency=config.min_frequency,
                heldout_fraction=recipe.pack.val_fraction if recipe.pack else 0.01,
                seed=recipe.seed,
                show_progress=True,
            )
        _done(folder, digest, start)
    else:
        console.print(f"tokenizer: unchanged, skipped ({folder})")
    info = folder / "lmforge_tokenizer.json"
    results["tokenizer"] = json.loads(info.read_text(encoding="utf-8")) if info.exists() else {}
    return digest


def _tokens(recipe, step, upstream, workers, console, results) -> str:
    from lmforge.tokenizer.pack import pack_corpus

    config, folder, run_dir = recipe.pack, step.folder, recipe.run_dir()
    digest = _digest(step, config.model_dump() | {"seed": recipe.seed}, upstream)
    if step.action != "skip":
        start = time.perf_counter()
        _fresh(step, run_dir)
        pack_corpus(
            run_dir / "corpus",
            run_dir / "tokenizer",
            folder,
            val_fraction=config.val_fraction,
            seed=recipe.seed,
            workers=workers,
            shard_tokens=config.shard_tokens,
            show_progress=True,
        )
        _done(folder, digest, start)
    else:
        console.print(f"tokens: unchanged, skipped ({folder})")
    results["tokens"] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    splits = results["tokens"]["splits"]
    console.print(
        f"tokens: train {splits['train']['tokens']:,}, validation {splits['validation']['tokens']:,}"
    )
    return digest


def _pretrain(recipe, step, upstream, workers, console, results) -> str:
    from lmforge.pretrain.loop import pretrain
    from lmforge.run.plan import pretrain_base

    config, folder, run_dir = recipe.pretrain, step.folder, recipe.run_dir()
    digest = _digest(step, config.model_dump() | {"seed": recipe.seed}, upstream)
    base = step.extra.get("base") or pretrain_base(config, recipe.seed, upstream)
    if step.action != "skip":
        start = time.perf_counter()
        resume = step.action in ("resume", "continue") and (folder / "checkpoint").exists()
        if not resume:
            _fresh(step, run_dir)
        if step.action == "continue":
            console.print(f"pretrain: continuing the previous run's checkpoint ({step.reason})")
        mark_stage(folder, digest, "started", base=base, budget=budget_of(config))
        options = config.model_dump(exclude={"objective", "preset"})
        pretrain(
            run_dir / "tokens",
            folder,
            config.objective,
            config.preset,
            resume=resume,
            seed=recipe.seed,
            **options,
        )
        _done(folder, digest, start, base=base, budget=budget_of(config))
    else:
        console.print(f"pretrain: unchanged, skipped ({folder})")
    results["pretrain"] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if config.objective == "mlm":
        from lmforge.run.report import fill_mask_samples

        results["pretrain"]["fill_mask_samples"] = fill_mask_samples(folder)
    return digest


def _pretrained_encoder(recipe: Recipe) -> Path | None:
    has_pretrain = recipe.tokenizer and recipe.pack and recipe.pretrain
    if has_pretrain and recipe.pretrain.objective in ("mlm", "rtd"):  # encoders to fine-tune
        return recipe.run_dir() / "pretrain"
    return None


def _classify(recipe, step, upstream, workers, console, results) -> str:
    from lmforge.run.classify import run_classify

    digest = _digest(step, recipe.classify.model_dump() | {"seed": recipe.seed}, upstream)
    start = time.perf_counter()
    create_stage_folder(step.folder)
    # always called: a finished model is not trained again ("done earlier"), the next one is
    results["classify"] = run_classify(
        recipe.classify, recipe.seed, recipe.run_dir(), _pretrained_encoder(recipe), digest, console
    )
    if step.action != "skip":
        _done(step.folder, digest, start)
    return digest


def _compress(recipe, step, upstream, workers, console, results) -> str:
    from lmforge.run.classify import ENSEMBLE_NAME, PRETRAINED_NAME, folder_name
    from lmforge.run.compress import compress_for_run

    config, folder, run_dir = recipe.compress, step.folder, recipe.run_dir()
    encoder = run_dir / "classify" / folder_name(PRETRAINED_NAME)
    if not (encoder / "lmforge_model.json").is_file():
        raise LmforgeError(
            "compress needs the fine-tuned transformer of the classify stage "
            "(classify.transformer: true)"
        )
    teacher = encoder
    if config.teacher == "ensemble":
        teacher = run_dir / "classify" / folder_name(ENSEMBLE_NAME)
        if not (teacher / "lmforge_model.json").is_file():
            raise LmforgeError(
                "compress.teacher: ensemble, but the classify stage built no ensemble (it needs "
                "two models or more); set compress.teacher: encoder"
            )
    digest = _digest(step, config.model_dump() | {"seed": recipe.seed}, upstream)
    if step.action != "skip":
        start = time.perf_counter()
        _fresh(step, run_dir)
        mark_stage(folder, digest, "started")
        compress_for_run(
            teacher,
            run_dir / "corpus",
            folder,
            encoder_dir=encoder,
            data=recipe.classify.data,
            student=config.student,
            seed=recipe.seed,
            threads=config.threads,
            latency_n=config.latency_n,
            console=console,
        )
        _done(folder, digest, start)
    else:
        console.print(f"compress: unchanged, skipped ({folder})")
    results["compress"] = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
    return digest


def _serving(recipe, step, upstream, workers, console, results) -> str:
    from lmforge.run.serving import choose_and_install

    digest = _digest(step, {"serving": 1}, upstream)
    if step.action != "skip":
        start = time.perf_counter()
        _fresh(step, recipe.run_dir())
        choose_and_install(recipe, step.folder, console)
        _done(step.folder, digest, start)
    else:
        console.print(f"serving: unchanged, skipped ({step.folder})")
    results["serving"] = json.loads((step.folder / "serving.json").read_text(encoding="utf-8"))
    return digest


STAGES = {
    "tokenizer": _tokenizer,
    "tokens": _tokens,
    "pretrain": _pretrain,
    "classify": _classify,
    "compress": _compress,
    "serving": _serving,
}


def write_run_report(run_dir: Path, results: dict[str, Any]) -> Path:
    """``runs/<name>/report.html``: the outcome, then every stage's summary and timings."""
    from lmforge.run.report import render_run_report

    path = run_dir / "report.html"
    path.write_text(render_run_report(run_dir, results), encoding="utf-8")
    return path
