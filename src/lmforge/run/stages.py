"""``lmforge run``: every stage of a recipe in order, each skipped when its inputs and config are unchanged.

Stages: corpus → tokenizer → tokens (pack) → pretrain → classify → compress. Each writes its own folder
under ``runs/<name>/``. A stage's *fingerprint* is the hash of its own config and
of the fingerprint of the stage it reads; it is stored in ``<folder>/lmforge_stage.json``
when the stage finishes. A stage whose stored fingerprint matches is skipped; a
pretraining run that was interrupted resumes from its checkpoint, an interrupted classify
stage from the next model. With a ``classify`` section the split's validation and test texts
are taken out of the corpus before it is built (:mod:`lmforge.run.classify`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from lmforge.run.recipe import Recipe

STAGE_FILE = "lmforge_stage.json"


def fingerprint(config: Any, upstream: str) -> str:
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    blob = json.dumps({"config": data, "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stage_state(folder: Path) -> dict[str, Any]:
    path = folder / STAGE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}


def mark_stage(folder: Path, digest: str, status: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAGE_FILE).write_text(
        json.dumps({"fingerprint": digest, "status": status}), encoding="utf-8"
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


def run_recipe(
    recipe: Recipe, workers: int | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Run all stages the recipe names; return {stage: manifest or summary}."""
    from lmforge.corpus.pipeline import build_corpus

    console = console or Console()
    run_dir = recipe.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}

    corpus = corpus_config(recipe, console)
    if workers is not None:
        corpus = corpus.model_copy(update={"workers": workers})
    console.rule("[bold]corpus")
    results["corpus"] = build_corpus(corpus, run_dir / "corpus")
    counts = results["corpus"]["counts"]
    console.print(
        f"corpus: read {counts['read']:,}, kept {counts['kept']:,}, removed {counts['removed']:,}"
    )
    upstream = results["corpus"]["output_hash"]

    if recipe.tokenizer is not None:
        upstream = _tokenizer_stage(recipe, run_dir, upstream, console, results)
    if recipe.tokenizer is not None and recipe.pack is not None:
        upstream = _pack_stage(recipe, run_dir, upstream, workers, console, results)
    pretrained = None
    if recipe.tokenizer is not None and recipe.pack is not None and recipe.pretrain is not None:
        upstream = _pretrain_stage(recipe, run_dir, upstream, console, results)
        if recipe.pretrain.objective in ("mlm", "rtd"):  # encoders the classify stage fine-tunes
            pretrained = run_dir / "pretrain"
    if recipe.classify is not None:
        upstream = _classify_stage(recipe, run_dir, upstream, pretrained, console, results)
        if recipe.compress is not None:
            _compress_stage(recipe, run_dir, upstream, console, results)
    write_run_report(run_dir, results)
    return results


def _skip(folder: Path, digest: str, name: str, console: Console) -> bool:
    state = stage_state(folder)
    if state.get("fingerprint") == digest and state.get("status") == "done":
        console.print(f"{name}: unchanged, skipped ({folder})")
        return True
    return False


def _tokenizer_stage(
    recipe: Recipe, run_dir: Path, upstream: str, console: Console, results: dict
) -> str:
    from lmforge.tokenizer.folder import copy_tokenizer
    from lmforge.tokenizer.train import train_from_corpus

    config = recipe.tokenizer
    folder = run_dir / "tokenizer"
    digest = fingerprint(config, upstream)
    console.rule("[bold]tokenizer")
    if not _skip(folder, digest, "tokenizer", console):
        shutil.rmtree(folder, ignore_errors=True)
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
        mark_stage(folder, digest, "done")
    info = folder / "lmforge_tokenizer.json"
    results["tokenizer"] = json.loads(info.read_text(encoding="utf-8")) if info.exists() else {}
    console.print(f"tokenizer: {folder}")
    return digest


def _pack_stage(
    recipe: Recipe,
    run_dir: Path,
    upstream: str,
    workers: int | None,
    console: Console,
    results: dict,
) -> str:
    from lmforge.tokenizer.pack import pack_corpus

    config = recipe.pack
    folder = run_dir / "tokens"
    digest = fingerprint(config.model_dump() | {"seed": recipe.seed}, upstream)
    console.rule("[bold]tokens")
    if not _skip(folder, digest, "tokens", console):
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
        mark_stage(folder, digest, "done")
    results["tokens"] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    splits = results["tokens"]["splits"]
    console.print(
        f"tokens: train {splits['train']['tokens']:,}, validation {splits['validation']['tokens']:,}"
    )
    return digest


def _pretrain_stage(
    recipe: Recipe, run_dir: Path, upstream: str, console: Console, results: dict
) -> str:
    from lmforge.pretrain.loop import pretrain

    config = recipe.pretrain
    folder = run_dir / "pretrain"
    digest = fingerprint(config.model_dump() | {"seed": recipe.seed}, upstream)
    console.rule(f"[bold]pretrain ({config.objective}, {config.preset})")
    if not _skip(folder, digest, "pretrain", console):
        state = stage_state(folder)
        resume = state.get("fingerprint") == digest and (folder / "checkpoint").exists()
        if not resume:
            shutil.rmtree(folder, ignore_errors=True)
        mark_stage(folder, digest, "started")
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
        mark_stage(folder, digest, "done")
    results["pretrain"] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if config.objective == "mlm":
        from lmforge.run.report import fill_mask_samples

        results["pretrain"]["fill_mask_samples"] = fill_mask_samples(folder)
    return digest


def _classify_stage(
    recipe: Recipe,
    run_dir: Path,
    upstream: str,
    pretrained: Path | None,
    console: Console,
    results: dict,
) -> str:
    from lmforge.run.classify import run_classify

    digest = fingerprint(recipe.classify.model_dump() | {"seed": recipe.seed}, upstream)
    console.rule("[bold]classify")
    results["classify"] = run_classify(
        recipe.classify, recipe.seed, run_dir, pretrained, digest, console
    )
    return digest


def _compress_stage(
    recipe: Recipe, run_dir: Path, upstream: str, console: Console, results: dict
) -> str:
    from lmforge.errors import LmforgeError
    from lmforge.run.classify import PRETRAINED_NAME, folder_name
    from lmforge.run.compress import compress_for_run

    config = recipe.compress
    folder = run_dir / "compress"
    teacher = run_dir / "classify" / folder_name(PRETRAINED_NAME)
    if not (teacher / "lmforge_model.json").is_file():
        raise LmforgeError(
            "compress needs the fine-tuned transformer of the classify stage "
            "(classify.transformer: true)"
        )
    digest = fingerprint(config.model_dump() | {"seed": recipe.seed}, upstream)
    console.rule(f"[bold]compress ({config.student} → int8 ONNX)")
    if not _skip(folder, digest, "compress", console):
        shutil.rmtree(folder, ignore_errors=True)
        mark_stage(folder, digest, "started")
        compress_for_run(
            teacher,
            run_dir / "corpus",
            folder,
            data=recipe.classify.data,
            student=config.student,
            seed=recipe.seed,
            threads=config.threads,
            latency_n=config.latency_n,
            console=console,
        )
        mark_stage(folder, digest, "done")
    results["compress"] = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
    return digest


def write_run_report(run_dir: Path, results: dict[str, Any]) -> Path:
    """``runs/<name>/report.html``: one page with every stage's summary and links to their reports."""
    from lmforge.run.report import render_run_report

    path = run_dir / "report.html"
    path.write_text(render_run_report(run_dir, results), encoding="utf-8")
    return path
