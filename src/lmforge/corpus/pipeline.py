"""The corpus builder: sources → document steps → global steps → output shards, resumable.

Execution model (see DESIGN.md):

- A *rank* is one input shard. Ranks are independent and deterministic, so the
  output does not depend on how many workers run them, nor on interruptions.
- The recipe's step list is cut at every global step (deduplication) into
  *stages*. Stage k, on every rank, reads its input (the shard for stage 0, else
  the rank's stage k-1 output minus the rows the global step removed), runs the
  document steps, and — when a global step follows — writes its documents and their
  signatures. Between stages the global step resolves once over all signatures.
- Every file is written under a temporary name, checked, then renamed; a rank's
  stage is done when its marker (a JSON file holding its stats) exists. A rerun
  skips whatever is marked. Nothing else decides what is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.executors.base import Executor
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.registry import build_step
from lmforge.corpus.sources import Shard, plan_shards, read_shard
from lmforge.corpus.stats import LENGTH_EDGES, RankStats, length_bin
from lmforge.corpus.step import REMOVED_SCHEMA, GlobalStep, StepLog
from lmforge.corpus.writer import AtomicParquetWriter, AtomicTextWriter, write_json_atomic
from lmforge.errors import LmforgeError

DOC_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("meta", pa.string())])
REMOVED_LOG_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("step", pa.string()),
        ("reason", pa.string()),
        ("dup_of", pa.string()),
        ("text", pa.string()),
    ]
)


@dataclass(frozen=True)
class Stage:
    """Document steps (indices into the recipe's step list), then optionally one global step."""

    doc_steps: tuple[int, ...]
    global_step: int | None


def plan_stages(config: CorpusConfig) -> list[Stage]:
    """Cut the enabled steps at each global step. The last stage has no global step."""
    stages: list[Stage] = []
    current: list[int] = []
    for index, step_config in enumerate(config.steps):
        if not step_config.enabled:
            continue
        if isinstance(build_step_cached(config_key(config), index), GlobalStep):
            stages.append(Stage(tuple(current), index))
            current = []
        else:
            current.append(index)
    stages.append(Stage(tuple(current), None))
    return stages


def config_key(config: CorpusConfig) -> str:
    """Canonical JSON of everything that decides the output (not workers nor executor)."""
    data = config.model_dump(mode="json", exclude={"workers", "executor"})
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def config_hash(config: CorpusConfig) -> str:
    return hashlib.sha256(config_key(config).encode()).hexdigest()[:16]


@cache
def _config_from_key(key: str) -> CorpusConfig:
    return CorpusConfig.model_validate_json(key)


@cache
def build_step_cached(key: str, index: int) -> Any:
    """One step object per (config, index) per process: models/tables load once per worker."""
    return build_step(_config_from_key(key).steps[index])


def step_key(index: int, config: CorpusConfig) -> str:
    return f"{index:02d}:{config.steps[index].type}"


# ----------------------------------------------------------------------------- layout


class Layout:
    """Where everything lives inside the output folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.work = out / "_work"
        self.data = out / "data"
        self.removed = out / "removed"

    def stage_docs(self, stage: int, rank: int) -> Path:
        return self.work / f"stage{stage}" / f"docs-{rank:05d}.parquet"

    def stage_sigs(self, stage: int, rank: int) -> Path:
        return self.work / f"stage{stage}" / f"sigs-{rank:05d}.parquet"

    def marker(self, stage: int, rank: int) -> Path:
        return self.work / f"stage{stage}" / f"done-{rank:05d}.json"

    def resolved(self, stage: int) -> Path:
        return self.work / f"global{stage}" / "removals.parquet"

    def resolved_marker(self, stage: int) -> Path:
        return self.work / f"global{stage}" / "done.json"

    def removed_log(self, stage: int, rank: int) -> Path:
        return self.removed / f"stage{stage}-{rank:05d}.parquet"

    def output(self, rank: int, fmt: str) -> Path:
        return self.data / (
            f"part-{rank:05d}.parquet" if fmt == "parquet" else f"part-{rank:05d}.jsonl"
        )


# ----------------------------------------------------------------------------- one rank


@dataclass(frozen=True)
class RankTask:
    config_key: str
    out: str
    stage: int
    rank: int
    shard: Shard


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_stage_input(task: RankTask, config: CorpusConfig, layout: Layout):
    """Yield documents or (document, removal) pairs / BadRecords for this rank's stage."""
    if task.stage == 0:
        source = config.sources[task.shard.source_index]
        yield from read_shard(task.shard, source)
        return
    previous = plan_stages(config)[task.stage - 1]
    removals = _rank_removals(layout.resolved(task.stage - 1), task.rank)
    parquet = pq.ParquetFile(layout.stage_docs(task.stage - 1, task.rank))
    row = 0
    for batch in parquet.iter_batches(batch_size=config.batch_size):
        for doc_id, text, meta in zip(
            *(batch.column(i).to_pylist() for i in range(3)), strict=True
        ):
            doc = Document(doc_id, text, json.loads(meta))
            removal = removals.get(row)
            yield (doc, removal, previous.global_step) if removal else doc
            row += 1


def _rank_removals(path: Path, rank: int) -> dict[int, tuple[str, str]]:
    table = pq.read_table(path, filters=[("rank", "=", rank)])
    rows = table.column("row").to_pylist()
    reasons = table.column("reason").to_pylist()
    dup_of = table.column("dup_of").to_pylist()
    return {r: (reason, d) for r, reason, d in zip(rows, reasons, dup_of, strict=True)}


def run_rank(task: RankTask) -> dict[str, Any]:
    """Run one stage of one rank to completion; return (and persist) its stats."""
    config = _config_from_key(task.config_key)
    layout = Layout(Path(task.out))
    stage = plan_stages(config)[task.stage]
    is_last = stage.global_step is None
    stats = RankStats()
    excerpt = config.output.keep_removed_text

    removed_writer = AtomicParquetWriter(
        layout.removed_log(task.stage, task.rank), REMOVED_LOG_SCHEMA
    )
    doc_writers: list[Any] = []
    sig_writer = None
    if is_last:
        for fmt in config.output.formats:
            path = layout.output(task.rank, fmt)
            if fmt == "parquet":
                doc_writers.append(AtomicParquetWriter(path, DOC_SCHEMA, config.output.compression))
            else:
                doc_writers.append(AtomicTextWriter(path))
    else:
        doc_writers.append(
            AtomicParquetWriter(layout.stage_docs(task.stage, task.rank), DOC_SCHEMA)
        )
    global_step = build_step_cached(task.config_key, stage.global_step) if not is_last else None

    removed_rows: list[dict[str, str]] = []
    previous_global = plan_stages(config)[task.stage - 1].global_step if task.stage else None

    def log_removed(doc_id: str, step: str, reason: str, dup_of: str, text: str) -> None:
        removed_rows.append(
            {"id": doc_id, "step": step, "reason": reason, "dup_of": dup_of, "text": text[:excerpt]}
        )

    for items in _batches(_read_stage_input(task, config, layout), config.batch_size):
        docs: list[Document] = []
        read = stats.step("read", "read", "read") if task.stage == 0 else None
        for item in items:
            if isinstance(item, BadRecord):
                read.docs_in += 1
                read.reasons[item.reason] += 1
                read.add_example(item.reason, item.id, item.detail)
                log_removed(item.id, "read", item.reason, "", item.detail)
            elif isinstance(item, tuple):  # removed by the previous stage's global step
                doc, (reason, dup_of), gindex = item
                gstats = stats.step(step_key(gindex, config), config.steps[gindex].type, "global")
                gstats.docs_in += 1
                gstats.chars_in += len(doc.text)
                gstats.reasons[reason] += 1
                gstats.add_example(reason, doc.id, doc.text)
                log_removed(doc.id, config.steps[gindex].type, reason, dup_of, doc.text)
            else:
                if previous_global is not None:
                    gstats = stats.step(
                        step_key(previous_global, config),
                        config.steps[previous_global].type,
                        "global",
                    )
                    gstats.docs_in += 1
                    gstats.docs_out += 1
                    gstats.chars_in += len(item.text)
                    gstats.chars_out += len(item.text)
                docs.append(item)
        if read is not None:
            read.docs_in += len(docs)
            read.docs_out += len(docs)
            chars = sum(len(d.text) for d in docs)
            read.chars_in += chars
            read.chars_out += chars
            for d in docs:
                stats.length_in[length_bin(len(d.text))] += 1

        for index in stage.doc_steps:
            step = build_step_cached(task.config_key, index)
            sstats = stats.step(step_key(index, config), config.steps[index].type)
            sstats.docs_in += len(docs)
            sstats.chars_in += sum(len(d.text) for d in docs)
            log = StepLog()
            started = time.perf_counter()
            docs = step.process(docs, log)
            sstats.seconds += time.perf_counter() - started
            sstats.docs_out += len(docs)
            sstats.chars_out += sum(len(d.text) for d in docs)
            sstats.counters.update(log.counters)
            for doc, reason in log.removed:
                sstats.reasons[reason] += 1
                sstats.add_example(reason, doc.id, doc.text)
                log_removed(doc.id, step.name, reason, "", doc.text)

        if global_step is not None and docs:
            gstats = stats.step(step_key(stage.global_step, config), global_step.name, "global")
            started = time.perf_counter()
            sigs = global_step.signature(docs)
            gstats.seconds += time.perf_counter() - started
            first_row = stats.docs_written
            sigs = sigs.append_column(
                "row", pa.array(range(first_row, first_row + len(docs)), pa.int64())
            )
            if sig_writer is None:
                sig_writer = AtomicParquetWriter(
                    layout.stage_sigs(task.stage, task.rank), sigs.schema
                )
            sig_writer.write(sigs)

        if docs:
            _write_docs(doc_writers, docs)
        stats.docs_written += len(docs)
        stats.chars_written += sum(len(d.text) for d in docs)
        if is_last:
            for d in docs:
                stats.length_out[length_bin(len(d.text))] += 1
                lang = d.meta.get("scores", {}).get("lang")
                if lang:
                    stats.languages_out[lang] += 1
        if removed_rows:
            removed_writer.write(pa.Table.from_pylist(removed_rows, REMOVED_LOG_SCHEMA))
            stats.removed_logged += len(removed_rows)
            removed_rows.clear()

    if global_step is not None and sig_writer is None:
        # No documents survived on this rank: an empty signature file keeps resolve simple.
        empty = global_step.signature([])
        sig_writer = AtomicParquetWriter(
            layout.stage_sigs(task.stage, task.rank),
            empty.append_column("row", pa.array([], pa.int64())).schema,
        )
    for writer in doc_writers:
        writer.close(expected_rows=stats.docs_written)
    if sig_writer is not None:
        sig_writer.close(expected_rows=stats.docs_written)
    removed_writer.close(expected_rows=stats.removed_logged)
    result = stats.to_json()
    write_json_atomic(layout.marker(task.stage, task.rank), result)
    return result


def _write_docs(writers: list[Any], docs: list[Document]) -> None:
    metas = [json.dumps(d.meta, ensure_ascii=False, sort_keys=True) for d in docs]
    for writer in writers:
        if isinstance(writer, AtomicParquetWriter):
            table = pa.table(
                {"id": [d.id for d in docs], "text": [d.text for d in docs], "meta": metas},
                schema=DOC_SCHEMA,
            )
            writer.write(table)
        else:
            writer.write_lines(
                json.dumps(
                    {"id": d.id, "text": d.text, "meta": d.meta}, ensure_ascii=False, sort_keys=True
                )
                for d in docs
            )


# ----------------------------------------------------------------------------- global steps


@dataclass(frozen=True)
class ResolveTask:
    config_key: str
    out: str
    stage: int
    ranks: int


def run_resolve(task: ResolveTask) -> dict[str, Any]:
    """Resolve the global step that ends ``task.stage`` over every rank's signatures."""
    config = _config_from_key(task.config_key)
    layout = Layout(Path(task.out))
    index = plan_stages(config)[task.stage].global_step
    step = build_step_cached(task.config_key, index)
    scratch = layout.work / f"global{task.stage}" / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    log = StepLog()
    started = time.perf_counter()
    files = [layout.stage_sigs(task.stage, r) for r in range(task.ranks)]
    removals = step.resolve(files, scratch, log)
    seconds = time.perf_counter() - started
    writer = AtomicParquetWriter(layout.resolved(task.stage), REMOVED_SCHEMA)
    writer.write(removals.select(REMOVED_SCHEMA.names))
    writer.close(expected_rows=removals.num_rows)
    result = {
        "step": step_key(index, config),
        "seconds": seconds,
        "removed": removals.num_rows,
        "counters": dict(log.counters),
        "extra": step.report_extra(),
    }
    write_json_atomic(layout.resolved_marker(task.stage), result)
    return result


# ----------------------------------------------------------------------------- driver


def build_corpus(
    config: CorpusConfig,
    out: Path,
    executor: Executor | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build (or resume building) the corpus into ``out``; return the manifest.

    Rerunning on a finished folder with the same config does nothing and returns
    the existing manifest; a folder built with another config is refused unless
    ``overwrite`` (then it is cleared).
    """
    out = Path(out)
    layout = Layout(out)
    key = config_key(config)
    digest = config_hash(config)
    manifest_path = out / "manifest.json"
    plan_path = layout.work / "plan.json"
    previous = _existing_hash(manifest_path, plan_path)
    if previous is not None and previous != digest:
        if not overwrite:
            raise LmforgeError(
                f"{out} holds a corpus built with another config ({previous}); "
                "use --overwrite or another --out"
            )
        _clear(out)
    elif previous == digest and manifest_path.exists() and not plan_path.exists():
        return json.loads(manifest_path.read_text(encoding="utf-8"))

    executor = executor or LocalExecutor(config.workers)
    started = time.perf_counter()
    shards = plan_shards(config.sources)
    if not shards:
        raise LmforgeError("the sources list no input shards")
    stages = plan_stages(config)
    write_json_atomic(
        plan_path, {"config_hash": digest, "ranks": len(shards), "stages": len(stages)}
    )

    stage_stats: list[RankStats] = []
    global_results: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for number, stage in enumerate(stages):
        t0 = time.perf_counter()
        todo = [
            RankTask(key, str(out), number, rank, shard)
            for rank, shard in enumerate(shards)
            if not layout.marker(number, rank).exists()
        ]
        names = [config.steps[i].type for i in stage.doc_steps]
        label = f"stage {number + 1}/{len(stages)}: " + (", ".join(names) or "apply dedup")
        if todo:
            executor.map(run_rank, todo, label)
        merged = RankStats()
        for rank in range(len(shards)):
            merged.merge(RankStats.from_json(json.loads(layout.marker(number, rank).read_text())))
        stage_stats.append(merged)
        timings[f"stage{number}"] = time.perf_counter() - t0
        if stage.global_step is not None:
            t0 = time.perf_counter()
            marker = layout.resolved_marker(number)
            if not marker.exists():
                executor_label = f"resolve {config.steps[stage.global_step].type}"
                LocalExecutor(1).map(
                    run_resolve, [ResolveTask(key, str(out), number, len(shards))], executor_label
                )
            global_results.append(json.loads(marker.read_text()))
            timings[f"global{number}"] = time.perf_counter() - t0

    manifest = _finalize(config, out, shards, stages, stage_stats, global_results, timings)
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_json_atomic(manifest_path, manifest)
    _remove_work(layout)
    return manifest


def _existing_hash(manifest_path: Path, plan_path: Path) -> str | None:
    for path in (plan_path, manifest_path):
        if path.exists():
            try:
                return json.loads(path.read_text(encoding="utf-8"))["config_hash"]
            except (ValueError, KeyError):
                return "unreadable"
    return None


def _clear(out: Path) -> None:
    import shutil

    for name in ("_work", "data", "removed"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("manifest.json", "stats.json", "report.html"):
        (out / name).unlink(missing_ok=True)


def _remove_work(layout: Layout) -> None:
    import shutil

    shutil.rmtree(layout.work, ignore_errors=True)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _finalize(
    config: CorpusConfig,
    out: Path,
    shards: list[Shard],
    stages: list[Stage],
    stage_stats: list[RankStats],
    global_results: list[dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    """Merge stats, check that every document is accounted for, write stats.json and the report."""
    from lmforge.corpus.report import write_report

    layout = Layout(out)
    merged = RankStats()
    for stats in stage_stats:
        merged.merge(stats)
    for result in global_results:
        gstats = merged.steps[result["step"]]
        gstats.seconds += result["seconds"]
        gstats.counters.update(result["counters"])
    final = stage_stats[-1]
    read = merged.steps["read"].docs_in if "read" in merged.steps else 0
    kept = final.docs_written
    removed = merged.removed_logged
    if read != kept + removed:
        raise RuntimeError(f"accounting error: read {read} != kept {kept} + removed {removed}")

    order = ["read"] + sorted(k for k in merged.steps if k != "read")
    steps = [merged.steps[k].to_json() | {"key": k} for k in order if k in merged.steps]
    outputs = sorted(p for p in layout.data.iterdir() if p.suffix in (".parquet", ".jsonl"))
    files = {p.relative_to(out).as_posix(): _file_sha256(p) for p in outputs}
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
        "languages": dict(sorted(merged.languages_out.items(), key=lambda kv: -kv[1])),
        "global": {r["step"]: r["extra"] for r in global_results},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json_atomic(out / "stats.json", stats)
    manifest = {
        "kind": "corpus",
        "config_hash": config_hash(config),
        "config": config.model_dump(mode="json"),
        "inputs": [dataclasses.asdict(s) for s in shards],
        "ranks": len(shards),
        "stages": len(stages),
        "counts": stats["counts"],
        "outputs": files,
        "output_hash": output_hash,
        "removed_log": "removed/",
        "versions": _versions(),
        "timings": stats["timings"],
    }
    write_report(out, stats, manifest)
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
