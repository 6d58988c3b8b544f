"""One phase of one rank: read its input, run the document steps, write documents, signatures, removals."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.markers import describe_files
from lmforge.corpus.plan import Layout, build_step_cached, config_from_key, plan_phases, step_key
from lmforge.corpus.sources import Shard, read_shard
from lmforge.corpus.stats import RankStats, add_lengths
from lmforge.corpus.step import StepLog
from lmforge.corpus.storage import Storage, open_storage
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
    """One phase of one rank. A rank reads ``shard`` and then ``more_shards`` (consecutive
    small files of the same source, grouped by :func:`~lmforge.corpus.plan.plan_ranks`);
    a task built with one shard, as before grouping existed, reads just that one."""

    config_key: str
    out: str  # the output folder or URL (lmforge.corpus.storage)
    phase: int
    rank: int
    shard: Shard
    more_shards: tuple[Shard, ...] = ()

    @property
    def shards(self) -> tuple[Shard, ...]:
        return (self.shard, *self.more_shards)


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _to_json(value: dict[str, Any]) -> str:
    # orjson: ~10x faster than json.dumps on the nested score dicts, same JSON.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def docs_to_table(docs: list[Document]) -> pa.Table:
    metas = [_to_json(d.meta) for d in docs]
    columns = {"id": [d.id for d in docs], "text": [d.text for d in docs], "meta": metas}
    return pa.table(columns, schema=DOC_SCHEMA)


def table_to_docs(table: pa.Table) -> list[Document]:
    ids, texts, metas = (table.column(name).to_pylist() for name in ("id", "text", "meta"))
    return [Document(i, t, orjson.loads(m)) for i, t, m in zip(ids, texts, metas, strict=True)]


def _removals(storage: Storage, path: Path, rank: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Rows of this rank that the global step removed (sorted), with reasons and kept ids."""
    with storage.open(path) as f:
        table = pq.read_table(f, filters=[("rank", "=", rank)]).sort_by("row")
    rows = table.column("row").to_numpy()
    return rows, table.column("reason").to_pylist(), table.column("dup_of").to_pylist()


class RankRun:
    """The state of one phase of one rank while it runs: writers, stats, the removed log."""

    def __init__(self, task: RankTask) -> None:
        self.task = task
        self.config = config_from_key(task.config_key)
        self.storage = open_storage(task.out)
        self.layout = Layout(self.storage.staging, self.storage)
        try:
            self._start(task)
        except BaseException:
            self.storage.close()  # an output at a URL: its private staging folder goes
            raise

    def _start(self, task: RankTask) -> None:
        phases = plan_phases(self.config)
        self.phase = phases[task.phase]
        self.previous = phases[task.phase - 1] if task.phase else None
        self.is_last = self.phase.global_step is None
        self.stats = RankStats()
        self.removed_rows: list[dict[str, str]] = []
        self._remove_stale_temps()
        # No removal on this rank, no removed-log file (2,000 small inputs: not 2,000 empty files).
        self.removed_writer = AtomicParquetWriter(
            self.layout.removed_log(task.phase, task.rank),
            REMOVED_LOG_SCHEMA,
            write_empty=False,
            storage=self.storage,
        )
        self.doc_writers: list[AtomicParquetWriter | AtomicTextWriter] = []
        if self.is_last:
            for fmt in self.config.output.formats:
                path = self.layout.output(task.rank, fmt)
                if fmt == "parquet":
                    compression = self.config.output.compression
                    self.doc_writers.append(
                        AtomicParquetWriter(path, DOC_SCHEMA, compression, storage=self.storage)
                    )
                else:
                    self.doc_writers.append(AtomicTextWriter(path, self.storage))
        else:
            path = self.layout.phase_docs(task.phase, task.rank)
            self.doc_writers.append(AtomicParquetWriter(path, DOC_SCHEMA, storage=self.storage))
        self.global_step = None if self.is_last else self._step(self.phase.global_step)
        self.sig_writer: AtomicParquetWriter | None = None

    def _remove_stale_temps(self) -> None:
        """A killed attempt of this rank may have left temp files (each attempt names its own):
        the rank is being redone, so they go."""
        layout, phase, rank = self.layout, self.task.phase, self.task.rank
        paths = [layout.removed_log(phase, rank), layout.marker(phase, rank)]
        if self.is_last:
            paths += [layout.output(rank, fmt) for fmt in self.config.output.formats]
        else:
            paths += [layout.phase_docs(phase, rank), layout.phase_sigs(phase, rank)]
        for path in paths:
            self.storage.remove_stale_temps(path)

    def _step(self, index: int) -> Any:
        return build_step_cached(self.task.config_key, index)

    def _stats(self, index: int, kind: str = "doc") -> Any:
        return self.stats.step(step_key(index, self.config), self.config.steps[index].type, kind)

    def log_removed(self, doc_id: str, step: str, reason: str, dup_of: str, text: str) -> None:
        excerpt = self.config.output.keep_removed_text
        row = {
            "id": doc_id,
            "step": step,
            "reason": reason,
            "dup_of": dup_of,
            "text": text[:excerpt],
        }
        self.removed_rows.append(row)

    # -- phase 0: documents come from the reader ------------------------------------
    def read_batch(self, items: list[Document | BadRecord]) -> list[Document]:
        read = self.stats.step("read", "read", "read")
        docs: list[Document] = []
        for item in items:
            if isinstance(item, BadRecord):
                self.stats.sources_in[self.task.shard.source_name] += 1
                read.docs_in += 1
                read.reasons[item.reason] += 1
                read.add_example(item.reason, item.id, item.detail)
                self.log_removed(item.id, "read", item.reason, "", item.detail)
            else:
                docs.append(item)
        self.stats.sources_in[self.task.shard.source_name] += len(docs)
        lengths = np.fromiter((len(d.text) for d in docs), dtype=np.int64, count=len(docs))
        read.docs_in += len(docs)
        read.docs_out += len(docs)
        read.chars_in += int(lengths.sum())
        read.chars_out += int(lengths.sum())
        add_lengths(self.stats.length_in, lengths)
        return docs

    # -- later phases: the previous phase's documents minus the global step's removals
    def previous_tables(self) -> Iterator[pa.Table]:
        index = self.previous.global_step
        gstats = self._stats(index, "global")
        name = self.config.steps[index].type
        rows, reasons, dup_of = _removals(
            self.storage, self.layout.resolved(self.task.phase - 1), self.task.rank
        )
        docs = self.layout.phase_docs(self.task.phase - 1, self.task.rank)
        with self.storage.open(docs) as f:
            parquet = pq.ParquetFile(f)
            start = 0
            for batch in parquet.iter_batches(batch_size=self.config.batch_size):
                table = pa.Table.from_batches([batch])
                stop = start + table.num_rows
                lo, hi = np.searchsorted(rows, [start, stop])
                drop = rows[lo:hi] - start
                lengths = pc.utf8_length(table.column("text")).to_numpy()
                gstats.docs_in += table.num_rows
                gstats.chars_in += int(lengths.sum())
                if len(drop):
                    gone = table.take(pa.array(drop))
                    for k, (doc_id, text) in enumerate(
                        zip(
                            gone.column("id").to_pylist(),
                            gone.column("text").to_pylist(),
                            strict=True,
                        )
                    ):
                        reason = reasons[lo + k]
                        gstats.reasons[reason] += 1
                        gstats.add_example(reason, doc_id, text)
                        self.log_removed(doc_id, name, reason, dup_of[lo + k], text)
                    keep = np.ones(table.num_rows, dtype=bool)
                    keep[drop] = False
                    table = table.filter(pa.array(keep))
                    lengths = lengths[keep]
                gstats.docs_out += table.num_rows
                gstats.chars_out += int(lengths.sum())
                start = stop
                yield table

    # -- document steps, then output --------------------------------------------------
    def run_steps(self, docs: list[Document]) -> list[Document]:
        for index in self.phase.doc_steps:
            step = self._step(index)
            sstats = self._stats(index)
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
                self.log_removed(doc.id, step.name, reason, "", doc.text)
        return docs

    def emit(self, table: pa.Table, docs: list[Document] | None = None) -> None:
        """Write kept documents (and their signatures when a global step follows)."""
        if table.num_rows:
            if self.global_step is not None:
                self._signatures(table, docs)
            for writer in self.doc_writers:
                if isinstance(writer, AtomicParquetWriter):
                    writer.write(table)
                else:
                    docs = docs if docs is not None else table_to_docs(table)
                    writer.write_lines(
                        _to_json({"id": d.id, "text": d.text, "meta": d.meta}) for d in docs
                    )
            lengths = pc.utf8_length(table.column("text")).to_numpy()
            self.stats.chars_written += int(lengths.sum())
            if self.is_last:
                add_lengths(self.stats.length_out, lengths)
                metas = (
                    [d.meta for d in docs]
                    if docs is not None
                    else map(orjson.loads, table.column("meta").to_pylist())
                )
                self.stats.sources_out[self.task.shard.source_name] += table.num_rows
                for meta in metas:
                    lang = meta.get("scores", {}).get("lang")
                    if lang:
                        self.stats.languages_out[lang] += 1
        self.stats.docs_written += table.num_rows
        self.flush_removed()

    def _signatures(self, table: pa.Table, docs: list[Document] | None) -> None:
        if docs is None:  # signatures need id and text only
            ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
            docs = [Document(i, t) for i, t in zip(ids, texts, strict=True)]
        gstats = self._stats(self.phase.global_step, "global")
        started = time.perf_counter()
        sigs = self.global_step.signature(docs)
        gstats.seconds += time.perf_counter() - started
        first = self.stats.docs_written
        sigs = sigs.append_column(
            "row", pa.array(np.arange(first, first + len(docs), dtype=np.int64))
        )
        if self.sig_writer is None:
            # Dictionary-encoding random hashes costs more than computing them.
            path = self.layout.phase_sigs(self.task.phase, self.task.rank)
            self.sig_writer = AtomicParquetWriter(
                path, sigs.schema, use_dictionary=False, storage=self.storage
            )
        self.sig_writer.write(sigs)

    def flush_removed(self) -> None:
        if self.removed_rows:
            self.removed_writer.write(pa.Table.from_pylist(self.removed_rows, REMOVED_LOG_SCHEMA))
            self.stats.removed_logged += len(self.removed_rows)
            self.removed_rows.clear()

    def abort(self) -> None:
        """Remove every temp file this rank started (after an error: nothing half-written)."""
        for writer in (*self.doc_writers, self.sig_writer, self.removed_writer):
            if writer is not None:
                writer.abort()
        self.storage.close()

    def finish(self) -> dict[str, Any]:
        self.flush_removed()
        if self.global_step is not None and self.sig_writer is None:
            # No documents survived on this rank: an empty signature file keeps resolve simple.
            empty = self.global_step.signature([])
            schema = empty.append_column("row", pa.array([], pa.int64())).schema
            path = self.layout.phase_sigs(self.task.phase, self.task.rank)
            self.sig_writer = AtomicParquetWriter(
                path, schema, use_dictionary=False, storage=self.storage
            )
        for writer in self.doc_writers:
            writer.close(expected_rows=self.stats.docs_written)
        if self.sig_writer is not None:
            self.sig_writer.close(expected_rows=self.stats.docs_written)
        self.removed_writer.close(expected_rows=self.stats.removed_logged)
        result = self.stats.to_json()
        written = {w.path: self.stats.docs_written for w in self.doc_writers}
        if self.sig_writer is not None:
            written[self.sig_writer.path] = self.stats.docs_written
        if self.removed_writer.committed:  # no removals, no removed-log file
            written[self.removed_writer.path] = self.stats.removed_logged
        result["files"] = describe_files(self.layout, written)
        marker = self.layout.marker(self.task.phase, self.task.rank)
        write_json_atomic(marker, result, self.storage)  # last: the rank is done
        self.storage.close()
        return result


def run_rank(task: RankTask) -> dict[str, Any]:
    """Run one phase of one rank to completion; return (and persist) its stats."""
    run = RankRun(task)
    config = run.config
    try:
        if task.phase == 0:
            source = config.sources[task.shard.source_index]  # the same for every shard
            records = itertools.chain.from_iterable(read_shard(s, source) for s in task.shards)
            for items in _batches(records, config.batch_size):
                docs = run.run_steps(run.read_batch(items))
                run.emit(docs_to_table(docs), docs)
        else:
            for table in run.previous_tables():
                if run.phase.doc_steps:
                    docs = run.run_steps(table_to_docs(table))
                    run.emit(docs_to_table(docs), docs)
                else:  # nothing to change: documents stay Arrow rows, metadata stays serialized
                    run.emit(table)
        return run.finish()
    except BaseException:
        run.abort()
        raise
