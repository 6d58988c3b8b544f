"""One stage of one rank: read its input, run the document steps, write documents, signatures, removals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.plan import Layout, build_step_cached, config_from_key, plan_stages, step_key
from lmforge.corpus.sources import Shard, read_shard
from lmforge.corpus.stats import RankStats, length_bin
from lmforge.corpus.step import StepLog
from lmforge.corpus.writer import AtomicParquetWriter, AtomicTextWriter, write_json_atomic

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
    config = config_from_key(task.config_key)
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
                # Dictionary-encoding random hashes costs more than computing them.
                sig_writer = AtomicParquetWriter(
                    layout.stage_sigs(task.stage, task.rank), sigs.schema, use_dictionary=False
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
