"""``lmforge ablate``: corpus variants → one tokenizer → same pretraining budget → same evaluation.

Folders under ``runs/<name>/ablation/``::

    corpora/<variant>/      each variant's corpus (the corpus builder: resumable, byte-identical)
    tokenizer/              ONE tokenizer, trained on the ``full`` variant: only the data changes
    tokens/<variant>/       train split of the variant; validation split = ``full``'s (the same
                            clean held-out text for every variant: documents are split by id, so
                            no variant trains on it)
    pretrain/<variant>/     the same model, budget and seed on each variant (further
                            ``pretrain_seeds``: ``pretrain/<variant>-seed<k>/``)
    downstream/<variant>[-seed<k>].json   fine-tuned macro-F1: full data, and N per class over
                            seeds, from each replicate's encoder
    results.json, report.html

Variants whose corpus holds the same documents (ids and texts: what the tokenizer and the model
see; the per-document metadata, such as filter scores, may differ) are trained once. Every
step is skipped when its inputs and config are unchanged, so an interrupted ablation resumes
(pretraining from its checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from lmforge.ablate.config import AblateConfig
from lmforge.ablate.variants import FULL, Variant, make_variants
from lmforge.errors import LmforgeError

RANDOM_INIT = "random init"
BUDGET_KEYS = ("max_steps", "max_tokens", "max_minutes")


def pretrain_config(recipe, config: AblateConfig):
    """The recipe's pretrain section with the ablation's overrides. A budget given in the
    overrides replaces the recipe's whole budget (a leftover ``max_minutes`` would make the
    variants depend on the machine's load)."""
    from lmforge.run.recipe import PretrainStage

    base = recipe.pretrain.model_dump()
    if any(k in config.pretrain for k in BUDGET_KEYS):
        base.update(dict.fromkeys(BUDGET_KEYS))
    try:
        return PretrainStage.model_validate({**base, **config.pretrain})
    except ValueError as exc:
        raise LmforgeError(f"ablate.pretrain: {str(exc).splitlines()[-1].strip()}") from None


def replicate_name(name: str, seed: int, seeds: list[int]) -> str:
    """Folder / file name of one replicate: the first seed keeps the variant's own name."""
    return name if seed == seeds[0] else f"{name}-seed{seed}"


def _done(folder: Path, digest: str) -> bool:
    from lmforge.run.state import stage_state

    state = stage_state(folder)
    return state.get("fingerprint") == digest and state.get("status") == "done"


def _order_full_first(variants: list[Variant]) -> list[Variant]:
    return sorted(variants, key=lambda v: v.name != FULL)


def text_hash(corpus_dir: Path) -> str:
    """sha256 over the kept documents' ids and texts, in corpus order."""
    import hashlib

    from lmforge.tokenizer.corpus_reader import corpus_shards, iter_batches

    digest = hashlib.sha256()
    for ids, texts in iter_batches(corpus_shards(corpus_dir), 8192):
        for doc_id, text in zip(ids, texts, strict=True):
            digest.update(f"{doc_id}\x00{text}\x00".encode())
    return digest.hexdigest()


def identical_groups(hashes: dict[str, str], order: list[str]) -> dict[str, str]:
    """``{variant: the earlier variant with the same output}`` for every duplicate variant."""
    first: dict[str, str] = {}
    same_as = {}
    for name in order:
        h = hashes[name]
        if h in first:
            same_as[name] = first[h]
        else:
            first[h] = name
    return same_as


def share_validation(tokens_dir: Path, reference: Path) -> None:
    """Make ``tokens_dir``'s validation split a copy of ``reference``'s (shards + manifest)."""
    from lmforge.tokenizer.pack import MANIFEST, offsets_name, shard_name

    ours = json.loads((tokens_dir / MANIFEST).read_text(encoding="utf-8"))
    ref = json.loads((reference / MANIFEST).read_text(encoding="utf-8"))
    for path in tokens_dir.glob("validation-*.npy"):
        path.unlink()
    for index, _ in enumerate(ref["splits"]["validation"]["shards"]):
        for name in (shard_name("validation", index), offsets_name("validation", index)):
            shutil.copyfile(reference / name, tokens_dir / name)
    ours["splits"]["validation"] = ref["splits"]["validation"]
    ours["validation_from"] = str(reference)
    tmp = tokens_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(ours, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(tokens_dir / MANIFEST)


def _pretrain_one(job: dict[str, Any]) -> dict[str, Any]:
    """Pretrain one variant (in this process or a pool worker with its share of the cores)."""
    from lmforge.pretrain.loop import pretrain
    from lmforge.run.state import create_stage_folder, mark_stage, remove_stage_folder, stage_state

    if job.get("threads"):
        import torch

        torch.set_num_threads(job["threads"])
    folder = Path(job["out"])
    state = stage_state(folder)
    resume = state.get("fingerprint") == job["digest"] and (folder / "checkpoint").exists()
    if not resume:  # a rebuild clears only a folder lmforge made (run.state's rule)
        remove_stage_folder(folder, Path(job["root"]))
    create_stage_folder(folder)
    mark_stage(folder, job["digest"], "started")
    options = dict(job["options"])
    pretrain(
        job["tokens"],
        folder,
        options.pop("objective"),
        options.pop("preset"),
        resume=resume,
        seed=job["seed"],
        progress=job["progress"],
        **options,
    )
    mark_stage(folder, job["digest"], "done")
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _finetune(data, init: dict[str, Any], config: AblateConfig, base: dict, seed: int) -> dict:
    """Fine-tuned test (and val) macro-F1 from one encoder: full data and few-shot."""
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import few_shot, train_and_evaluate

    ft = config.finetune
    result: dict[str, Any] = {}
    if ft.full_data:
        params = {**base, **ft.params, **init, "seed": seed}
        _, row = train_and_evaluate(make_model("transformer", **params), data)
        result["full"] = {k: row[k] for k in ("macro_f1", "val_macro_f1", "accuracy", "train_s")}
    if ft.few_shot:
        params = {**base, **ft.few_shot_params, **init, "seed": seed}
        rows = few_shot(
            lambda: make_model("transformer", **params),
            data.train_texts,
            data.train_labels,
            data.test_texts,
            data.test_labels,
            (ft.few_shot,),
            tuple(ft.seeds),
        )
        result["few_shot"] = rows[0]
    return result


def run_ablation(
    recipe,
    variants: list[str] | None = None,
    workers: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Build, pretrain and evaluate every variant; write ``results.json`` and ``report.html``."""
    from lmforge.corpus.pipeline import build_corpus
    from lmforge.run.classify import export_heldout, with_holdout
    from lmforge.run.state import create_stage_folder, fingerprint, mark_stage, remove_stage_folder

    console = console or Console()
    if recipe.tokenizer is None or recipe.pack is None or recipe.pretrain is None:
        raise LmforgeError("ablate needs the recipe's tokenizer, pack and pretrain sections")
    config = recipe.ablate or AblateConfig()
    pre = pretrain_config(recipe, config)
    out = recipe.run_dir() / "ablation"
    out.mkdir(parents=True, exist_ok=True)
    chosen = _order_full_first(make_variants(recipe.corpus, variants or config.variants))
    finetuned_variants(config.finetune.variants, [v.name for v in chosen], {})  # fail early
    console.print(
        f"ablation of {len(chosen)} corpus variants ({', '.join(v.name for v in chosen)}); "
        f"pretraining {pre.objective} {pre.preset}, budget "
        + ", ".join(f"{k}={getattr(pre, k)}" for k in BUDGET_KEYS if getattr(pre, k) is not None)
    )

    # 1. corpora (the classification split's val + test texts are taken out of every variant:
    #    that is the evaluation protocol, not a data choice under test)
    heldout = None
    if recipe.classify is not None and recipe.classify.holdout_from_corpus:
        heldout = export_heldout(recipe.classify, recipe.seed, out)
    corpora: dict[str, dict] = {}
    for variant in chosen:
        corpus = with_holdout(variant.corpus, heldout) if heldout else variant.corpus
        if workers is not None:
            corpus = corpus.model_copy(update={"workers": workers})
        console.rule(f"[bold]corpus: {variant.name}[/] ({variant.description})")
        corpora[variant.name] = build_corpus(corpus, out / "corpora" / variant.name)
    hashes = {v.name: text_hash(out / "corpora" / v.name) for v in chosen}
    same_as = identical_groups(hashes, [v.name for v in chosen])
    distinct = [v.name for v in chosen if v.name not in same_as]
    for name, other in same_as.items():
        console.print(f"{name}: same corpus as {other}, trained once")

    # 2. one tokenizer, trained on the full variant
    from lmforge.tokenizer.corpus_reader import heldout_text_digests
    from lmforge.tokenizer.pack import pack_corpus
    from lmforge.tokenizer.train import train_from_corpus

    tok_dir = out / "tokenizer"
    tok_digest = fingerprint(recipe.tokenizer.model_dump() | {"seed": recipe.seed}, hashes[FULL])
    if not _done(tok_dir, tok_digest):
        console.rule("[bold]tokenizer (trained on the full variant)")
        remove_stage_folder(tok_dir, recipe.run_dir())
        create_stage_folder(tok_dir)
        train_from_corpus(
            out / "corpora" / FULL,
            kind=recipe.tokenizer.kind,
            vocab_size=recipe.tokenizer.vocab_size,
            out_dir=tok_dir,
            lowercase=recipe.tokenizer.lowercase,
            min_frequency=recipe.tokenizer.min_frequency,
            heldout_fraction=recipe.pack.val_fraction,
            seed=recipe.seed,
            show_progress=True,
        )
        mark_stage(tok_dir, tok_digest, "done")

    # 3. tokens: each variant's train split, full's validation split for everyone. A variant
    #    that keeps copies of a document under other ids (no dedup) would train on full's
    #    held-out text and show a held-out loss it did not earn: its train split leaves out
    #    every document whose text is one of full's validation texts.
    pack_key = recipe.pack.model_dump() | {"seed": recipe.seed, "tokenizer": tok_digest}
    token_digest: dict[str, str] = {}
    heldout_texts: set[int] | None = None
    for name in distinct:  # FULL comes first
        folder = out / "tokens" / name
        key = pack_key | {"validation_from": hashes[FULL]}
        if name != FULL:
            key["exclude_heldout_copies"] = True
        digest = fingerprint(key, hashes[name])
        token_digest[name] = digest
        if _done(folder, digest):
            continue
        console.rule(f"[bold]tokens: {name}")
        remove_stage_folder(folder, recipe.run_dir())
        create_stage_folder(folder)
        if name != FULL and heldout_texts is None:
            heldout_texts = heldout_text_digests(
                out / "corpora" / FULL, recipe.pack.val_fraction, recipe.seed
            )
        pack_corpus(
            out / "corpora" / name,
            tok_dir,
            folder,
            val_fraction=recipe.pack.val_fraction,
            seed=recipe.seed,
            workers=workers,
            shard_tokens=recipe.pack.shard_tokens,
            show_progress=True,
            exclude_train=heldout_texts if name != FULL else None,
        )
        if name != FULL:
            share_validation(folder, out / "tokens" / FULL)
        mark_stage(folder, digest, "done")

    # 4. the same pretraining on each, once per pretraining seed (replicate)
    options = pre.model_dump(exclude={"snapshot_steps"})
    seeds = list(config.pretrain_seeds or [recipe.seed])
    jobs = []
    pretrain_digest: dict[tuple[str, int], str] = {}
    for seed in seeds:  # every variant's first replicate before any second one
        for name in distinct:
            run_name = replicate_name(name, seed, seeds)
            folder = out / "pretrain" / run_name
            digest = fingerprint(options | {"seed": seed}, token_digest[name])
            pretrain_digest[name, seed] = digest
            if not _done(folder, digest):
                jobs.append(
                    {
                        "name": run_name,
                        "tokens": str(out / "tokens" / name),
                        "out": str(folder),
                        "digest": digest,
                        "root": str(recipe.run_dir()),
                        "options": options,
                        "seed": seed,
                        "progress": config.parallel == 1,
                    }
                )
    if jobs:
        _run_pretraining(jobs, config.parallel, console)
    pretrained = {}
    for name in distinct:
        folders = [replicate_name(name, seed, seeds) for seed in seeds]
        manifests = {
            seed: json.loads((out / "pretrain" / folder / "manifest.json").read_text("utf-8"))
            for seed, folder in zip(seeds, folders, strict=True)
        }
        pretrained[name] = combine_pretrained(manifests, folders)

    # 5. downstream, from each replicate's encoder (and from random init, for scale)
    downstream: dict[str, dict] = {}
    if recipe.classify is not None and pre.objective == "mlm":
        # random init depends on the architecture, the tokenizer and its seed, not on the budget
        for seed in seeds:
            scratch = fingerprint({"preset": pre.preset, "seed": seed}, token_digest[FULL])
            pretrain_digest[RANDOM_INIT, seed] = scratch
        tuned = finetuned_variants(config.finetune.variants, [v.name for v in chosen], same_as)
        downstream = _downstream(recipe, config, out, tuned, seeds, pretrain_digest, console)

    results = {
        "recipe": recipe.name,
        "pretrain": options,
        "pretrain_seeds": seeds,
        "finetune": config.finetune.model_dump(),
        "variants": [
            {
                "name": v.name,
                "description": v.description,
                "steps": [s.type for s in v.corpus.steps],
                "same_as": same_as.get(v.name),
                "counts": corpora[v.name]["counts"],
                "chars": _chars(out / "corpora" / v.name),
                "text_hash": hashes[v.name],
            }
            for v in chosen
        ],
        "pretrained": pretrained,
        "downstream": downstream,
    }
    from lmforge.ablate.report import write_report

    (out / "results.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    report = write_report(out, results)
    console.print(f"ablation report: {report}")
    return results


def finetuned_variants(
    requested: list[str] | None, chosen: list[str], same_as: dict[str, str]
) -> list[str]:
    """The trained variants to fine-tune, in ``chosen`` order: ``full`` and ``requested`` (a
    variant that came out identical to another stands for that one), or every trained variant."""
    trained = [n for n in chosen if n not in same_as]
    if requested is None:
        return trained
    unknown = [n for n in requested if n not in chosen]
    if unknown:
        raise LmforgeError(
            f"ablate.finetune.variants: {', '.join(unknown)} not among the variants "
            f"({', '.join(chosen)})"
        )
    wanted = {same_as.get(n, n) for n in requested} | {FULL}  # the Δ columns need full
    return [n for n in trained if n in wanted]


def _chars(corpus_dir: Path) -> int:
    stats = json.loads((corpus_dir / "stats.json").read_text(encoding="utf-8"))
    return int(stats["chars"]["kept"])


def _run_pretraining(jobs: list[dict], parallel: int, console: Console) -> None:
    parallel = min(parallel, len(jobs))
    if parallel == 1:
        for job in jobs:
            console.rule(f"[bold]pretrain: {job['name']}")
            _pretrain_one(job)
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // parallel)
    for job in jobs:
        job["threads"] = threads
    console.print(
        f"pretraining {len(jobs)} variants, {parallel} at a time, {threads} thread(s) each"
    )
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(parallel, mp_context=context) as pool:
        for job, manifest in zip(jobs, pool.map(_pretrain_one, jobs), strict=True):
            console.print(f"pretrain {job['name']}: val loss {manifest['final_val_loss']}")


def combine_pretrained(manifests: dict[int, dict], folders: list[str]) -> dict:
    """One variant's pretraining over its replicates: the first replicate's manifest, with the
    held-out loss and masked accuracy replaced by their means over the replicates (and their
    standard deviations beside them)."""
    first = dict(next(iter(manifests.values())))
    losses = [m.get("final_val_loss") for m in manifests.values()]
    accs = [m.get("final_val_acc") for m in manifests.values()]
    if len(manifests) > 1 and None not in losses and None not in accs:
        import numpy as np

        first["final_val_loss"] = float(np.mean(losses))
        first["final_val_loss_std"] = float(np.std(losses))
        first["final_val_acc"] = float(np.mean(accs))
        first["final_val_acc_std"] = float(np.std(accs))
    first["replicates"] = {
        str(seed): {
            k: m.get(k) for k in ("final_val_loss", "final_val_acc", "tokens_seen", "steps")
        }
        for seed, m in manifests.items()
    }
    first["folders"] = folders
    return first


def combine_downstream(runs: list[dict]) -> dict:
    """One variant's fine-tuning results over its replicates: full-data macro-F1 as the mean
    (``std`` and ``scores`` beside it), few-shot scores pooled over replicates and sample seeds."""
    if len(runs) == 1:
        return runs[0]
    import numpy as np

    combined: dict[str, Any] = {"test_n": runs[0].get("test_n"), "replicates": len(runs)}
    if all("full" in r for r in runs):
        scores = [r["full"]["macro_f1"] for r in runs]
        combined["full"] = {
            k: float(np.mean([r["full"][k] for r in runs]))
            for k in ("macro_f1", "val_macro_f1", "accuracy", "train_s")
        }
        combined["full"] |= {"std": float(np.std(scores)), "scores": scores}
    if all("few_shot" in r for r in runs):
        scores = [s for r in runs for s in r["few_shot"]["scores"]]
        combined["few_shot"] = {
            "n_per_class": runs[0]["few_shot"]["n_per_class"],
            "seeds": runs[0]["few_shot"]["seeds"],
            "scores": scores,
            "mean": float(np.mean(scores)),
            "std": float(np.std(scores)),
        }
    return combined


def _downstream(recipe, config, out, distinct, seeds, upstream, console) -> dict[str, dict]:
    """Fine-tune from each replicate's encoder and from random init (one fresh initialisation
    per seed). A saved result is reused only for the same encoder: ``upstream`` holds each
    one's pretraining digest (budget, options, tokens, seed), so a new budget fine-tunes again."""
    from lmforge.classify.data import load_classification_data
    from lmforge.classify.leakage import check_leakage
    from lmforge.classify.transformer import random_init_params
    from lmforge.run.state import fingerprint

    cls = recipe.classify
    data = load_classification_data(cls.data, cls.text_col, cls.label_col, recipe.seed)
    base = dict(cls.transformer_params)
    key = config.finetune.model_dump(exclude={"variants"}) | {"base": base, "seed": recipe.seed}
    runs: dict[str, list[dict]] = {}
    scratch = random_init_params(out / "pretrain" / FULL)
    entries = [
        (name, seed, {"init": str(out / "pretrain" / replicate_name(name, seed, seeds))})
        for seed in seeds
        for name in distinct
    ] + [(RANDOM_INIT, seed, scratch) for seed in seeds]
    for name, seed, init in entries:
        run_name = replicate_name(name, seed, seeds)
        path = out / "downstream" / f"{run_name.replace(' ', '_')}.json"
        digest = fingerprint(
            key | {"replicate_seed": seed}, upstream[name, seed] + json.dumps(init, sort_keys=True)
        )
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("fingerprint") == digest:
                runs.setdefault(name, []).append(saved["result"])
                continue
        if name != RANDOM_INIT and seed == seeds[0]:
            check_leakage(data, out / "corpora" / name, allow_leakage=cls.allow_leakage)
        with console.status(f"fine-tuning from {run_name}"):
            result = _finetune(data, init, config, base, seed)
        result["test_n"] = len(data.test_texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fingerprint": digest, "result": result}), encoding="utf-8")
        label = name if seed == seeds[0] else f"{name} (pretraining seed {seed})"
        console.print(f"{label}: {_summary(result)}")
        runs.setdefault(name, []).append(result)
    return {name: combine_downstream(results) for name, results in runs.items()}


def _summary(result: dict) -> str:
    parts = []
    if "full" in result:
        parts.append(f"full data macro-F1 {result['full']['macro_f1']:.4f}")
    if "few_shot" in result:
        fs = result["few_shot"]
        parts.append(f"{fs['n_per_class']}/class {fs['mean']:.4f} ± {fs['std']:.4f}")
    return ", ".join(parts)
