"""The corpus builder: sources → document steps → global steps → output shards, resumable.

Execution model (see docs/architecture.md and docs/corpus.md):

- A *rank* is one input shard, or consecutive small files of one source
  (:func:`~lmforge.corpus.plan.plan_ranks`). Ranks are independent and deterministic, so the
  output does not depend on how many workers run them, nor on interruptions.
- The recipe's step list is cut at every global step (deduplication) into
  *phases*. Phase k, on every rank, reads its input (the shard for phase 0, else
  the rank's phase k-1 output minus the rows the global step removed), runs the
  document steps, and — when a global step follows — writes its documents and their
  signatures. Between phases the global step resolves once over all signatures.
- Every file is written under a temporary name, checked, then renamed; a rank's
  phase is done when its marker (a JSON file holding its stats) exists. A rerun
  skips whatever is marked. Nothing else decides what is done.
- The output is a local folder or any fsspec URL (:mod:`.storage`): results, markers and the
  manifest live there; per-rank work is staged on the local disk of whoever runs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors import make_executor
from lmforge.corpus.executors.base import Executor
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.markers import collect_markers, load_marker
from lmforge.corpus.plan import (
    Layout,
    Phase,
    build_step_cached,
    config_from_key,
    config_hash,
    config_key,
    plan_phases,
    plan_ranks,
    step_key,
)
from lmforge.corpus.rank import RankTask, run_rank
from lmforge.corpus.sources import Shard, plan_shards
from lmforge.corpus.stats import LENGTH_EDGES, RankStats
from lmforge.corpus.step import REMOVED_SCHEMA, StepLog
from lmforge.corpus.storage import Storage, StorageError, open_storage, sha256_of
from lmforge.corpus.writer import AtomicParquetWriter, write_json_atomic, writing
from lmforge.errors import LmforgeError

__all__ = ["build_corpus", "run_resolve", "ResolveTask"]


# ----------------------------------------------------------------------------- global steps


@dataclass(frozen=True)
class ResolveTask:
    config_key: str
    out: str
    phase: int
    ranks: int


def run_resolve(task: ResolveTask) -> dict[str, Any]:
    """Resolve the global step that ends ``task.phase`` over every rank's signatures."""
    config = config_from_key(task.config_key)
    with open_storage(task.out) as storage:
        return _resolve(task, config, Layout(storage.staging, storage))


def _resolve(task: ResolveTask, config: CorpusConfig, layout: Layout) -> dict[str, Any]:
    storage = layout.storage
    index = plan_phases(config)[task.phase].global_step
    step = build_step_cached(task.config_key, index)
    scratch = layout.work / f"global{task.phase}" / "scratch"  # local: staging for a URL
    log = StepLog()
    started = time.perf_counter()
    with writing(scratch, lambda: None):  # a full disk is one line; the rerun redoes this step
        # the step reads local files: an output at a URL has them downloaded into staging
        files = [storage.local_copy(layout.phase_sigs(task.phase, r)) for r in range(task.ranks)]
        scratch.mkdir(parents=True, exist_ok=True)
        removals = step.resolve(files, scratch, log)
    seconds = time.perf_counter() - started
    writer = AtomicParquetWriter(layout.resolved(task.phase), REMOVED_SCHEMA, storage=storage)
    writer.write(removals.select(REMOVED_SCHEMA.names))
    writer.close(expected_rows=removals.num_rows)
    result = {
        "step": step_key(index, config),
        "seconds": seconds,
        "removed": removals.num_rows,
        "counters": dict(log.counters),
        "extra": step.report_extra(),
    }
    write_json_atomic(layout.resolved_marker(task.phase), result, storage)
    return result


# ----------------------------------------------------------------------------- driver


def build_corpus(
    config: CorpusConfig,
    out: Path | str,
    executor: Executor | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build (or resume building) the corpus into ``out`` (a local folder, ``file://``, or any
    fsspec URL such as ``s3://bucket/prefix``); return the manifest.

    Rerunning on a finished folder with the same config does nothing and returns
    the existing manifest; a folder built with another config is refused unless
    ``overwrite`` (then it is cleared).
    """
    executor = executor or make_executor(config)
    with open_storage(out) as storage:
        if storage.url.startswith("memory://"):
            # memory:// lives in this process only: its ranks must run here (tests, notebooks)
            if not isinstance(executor, LocalExecutor):
                raise LmforgeError(f"{storage.url}: a memory:// output needs the local executor")
            if executor.workers != 1:
                executor = LocalExecutor(1)
        try:
            return _build(config, Layout(storage.staging, storage), executor, overwrite)
        except StorageError as exc:  # reading the output's state (writes are OutputError)
            raise LmforgeError(
                f"cannot access {exc} (check the credentials, the network and the URL)"
            ) from None


def _build(
    config: CorpusConfig, layout: Layout, executor: Executor, overwrite: bool
) -> dict[str, Any]:
    storage = layout.storage
    out = layout.out
    key = config_key(config)
    digest = config_hash(config)
    manifest_path = out / "manifest.json"
    plan_path = layout.work / "plan.json"
    previous = _existing_hash(storage, manifest_path, plan_path)
    if previous is not None and previous != digest:
        if not overwrite:
            raise LmforgeError(
                f"{storage.url} holds a corpus built with another config ({previous}); "
                "use --overwrite or another --out"
            )
        _clear(layout)
    elif previous == digest and storage.exists(manifest_path) and not storage.exists(plan_path):
        return json.loads(storage.read_text(manifest_path))
    for name in ("manifest.json", "stats.json", "report.html", "_work/plan.json"):
        storage.remove_stale_temps(out / name)  # what a killed driver left; ranks clean their own

    started = time.perf_counter()
    shards = plan_shards(config.sources)
    if not shards:
        raise LmforgeError("the sources list no input shards")
    phases = plan_phases(config)
    ranks = plan_ranks(shards)
    write_json_atomic(
        plan_path, {"config_hash": digest, "ranks": len(ranks), "phases": len(phases)}, storage
    )

    phase_stats: list[RankStats] = []
    global_results: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for number, phase in enumerate(phases):
        t0 = time.perf_counter()
        todo = [
            RankTask(key, storage.url, number, rank, group[0], group[1:])
            for rank, group in enumerate(ranks)
            if load_marker(layout, number, rank) is None
        ]
        names = [config.steps[i].type for i in phase.doc_steps]
        label = f"phase {number + 1}/{len(phases)}: " + (", ".join(names) or "apply dedup")
        if todo:
            executor.map(run_rank, todo, label)
        merged = RankStats()
        for marker in collect_markers(layout, number, len(ranks)):
            merged.merge(RankStats.from_json(marker))
        phase_stats.append(merged)
        timings[f"phase{number}"] = time.perf_counter() - t0
        if phase.global_step is not None:
            t0 = time.perf_counter()
            marker = layout.resolved_marker(number)
            if not storage.exists(marker):
                executor_label = f"resolve {config.steps[phase.global_step].type}"
                task = ResolveTask(key, storage.url, number, len(ranks))
                LocalExecutor(1).map(run_resolve, [task], executor_label)
            global_results.append(json.loads(storage.read_text(marker)))
            timings[f"global{number}"] = time.perf_counter() - t0

    manifest = _finalize(
        config, layout, shards, phases, phase_stats, global_results, timings, executor.describe()
    )
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_json_atomic(manifest_path, manifest, storage)
    storage.remove_tree(layout.work)
    return manifest


def _existing_hash(storage: Storage, manifest_path: Path, plan_path: Path) -> str | None:
    for path in (plan_path, manifest_path):
        if storage.exists(path):
            try:
                return json.loads(storage.read_text(path))["config_hash"]
            except (ValueError, KeyError):
                return "unreadable"
    return None


def _clear(layout: Layout) -> None:
    for name in ("_work", "data", "removed"):
        layout.storage.remove_tree(layout.out / name)
    for name in ("manifest.json", "stats.json", "report.html"):
        layout.storage.remove(layout.out / name)


def _finalize(
    config: CorpusConfig,
    layout: Layout,
    shards: list[Shard],
    phases: list[Phase],
    phase_stats: list[RankStats],
    global_results: list[dict[str, Any]],
    timings: dict[str, float],
    executor: dict[str, Any],
) -> dict[str, Any]:
    """Merge stats, check that every document is accounted for, write stats.json and the report."""
    from lmforge.corpus.report import write_report

    out, storage = layout.out, layout.storage
    merged = RankStats()
    for stats in phase_stats:
        merged.merge(stats)
    for result in global_results:
        gstats = merged.steps[result["step"]]
        gstats.seconds += result["seconds"]
        gstats.counters.update(result["counters"])
    final = phase_stats[-1]
    read = merged.steps["read"].docs_in if "read" in merged.steps else 0
    kept = final.docs_written
    removed = merged.removed_logged
    if read != kept + removed:
        raise RuntimeError(f"accounting error: read {read} != kept {kept} + removed {removed}")

    order = ["read"] + sorted(k for k in merged.steps if k != "read")
    steps = [merged.steps[k].to_json() | {"key": k} for k in order if k in merged.steps]
    outputs = [
        layout.data / n for n in storage.list(layout.data) if n.endswith((".parquet", ".jsonl"))
    ]
    files = {p.relative_to(out).as_posix(): sha256_of(storage, p) for p in outputs}
    output_hash = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    stats = {
        "counts": {"read": read, "kept": kept, "removed": removed},
        "chars": {
            "read": merged.steps["read"].chars_in if "read" in merged.steps else 0,
            "kept": final.chars_written,
        },
        "steps": steps,
        "length_hist": {
            "edges": LENGTH_EDGES,
            "before": merged.length_in,
            "after": final.length_out,
        },
        "sources": {
            name: {"read": merged.sources_in[name], "kept": merged.sources_out[name]}
            for name in sorted(merged.sources_in)
        },
        "languages": dict(sorted(merged.languages_out.items(), key=lambda kv: -kv[1])),
        "global": {r["step"]: r["extra"] for r in global_results},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json_atomic(out / "stats.json", stats, storage)
    manifest = {
        "kind": "corpus",
        "config_hash": config_hash(config),
        "config": config.model_dump(mode="json"),
        "inputs": [dataclasses.asdict(s) for s in shards],
        "ranks": len(plan_ranks(shards)),
        "phases": len(phases),
        "counts": stats["counts"],
        "outputs": files,
        "output_hash": output_hash,
        "removed_log": "removed/",
        "versions": _versions(),
        "timings": stats["timings"],
        "executor": executor,
    }
    write_report(out, stats, manifest, storage)
    return manifest


def _versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in (
        "lmforge",
        "pyarrow",
        "numpy",
        "opencc",
        "ftfy",
        "py3langid",
        "trafilatura",
        "xxhash",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions
