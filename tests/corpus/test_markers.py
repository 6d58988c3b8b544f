"""A completion marker counts only when the files it certifies still match (size, records):
on shared storage a marker can outlive its files, and the rank must then be run again."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus
from lmforge.corpus.plan import Layout, config_key
from lmforge.corpus.rank import RankTask, run_rank
from lmforge.corpus.sources import plan_shards


def make_config(inputs: Path) -> CorpusConfig:
    # Two cheap steps, one of them global: phase 0 writes documents and signatures.
    steps = [{"type": "length"}, {"type": "exact_dedup"}]
    return CorpusConfig(sources=[{"type": "files", "paths": [str(inputs)]}], steps=steps)


def test_a_rank_whose_files_no_longer_match_its_marker_is_redone(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    config = make_config(sharded_inputs)
    reference = build_corpus(config, tmp_path / "ref", LocalExecutor(1))
    out = tmp_path / "damaged"
    layout = Layout(out)
    shards = plan_shards(config.sources)
    for rank in (0, 1):
        run_rank(RankTask(config_key(config), str(out), 0, rank, shards[rank]))
    # Rank 0: its documents file lost its last rows (a stale copy on a shared file system).
    docs = layout.phase_docs(0, 0)
    table = pq.read_table(docs)
    pq.write_table(table.slice(0, table.num_rows - 5), docs)
    # Rank 1: same rows, other bytes (a partly synced file).
    sigs = layout.phase_sigs(0, 1)
    sigs.write_bytes(sigs.read_bytes() + b"\0")
    resumed = build_corpus(config, out, LocalExecutor(1))
    assert resumed["counts"] == reference["counts"]
    assert resumed["output_hash"] == reference["output_hash"]


def test_load_marker_checks_every_certified_file(sharded_inputs: Path, tmp_path: Path) -> None:
    from lmforge.corpus.markers import load_marker

    config = make_config(sharded_inputs)
    layout = Layout(tmp_path)
    shard = plan_shards(config.sources)[0]
    stats = run_rank(RankTask(config_key(config), str(tmp_path), 0, 0, shard))
    marker = load_marker(layout, 0, 0)
    assert marker is not None and marker["docs_written"] == stats["docs_written"] > 0
    # a rank that removed nothing writes no removed log, so its marker certifies none
    expected = {"_work/phase0/docs-00000.parquet", "_work/phase0/sigs-00000.parquet"}
    if stats["removed_logged"]:
        expected.add("removed/phase0-00000.parquet")
    assert set(marker["files"]) == expected
    layout.phase_sigs(0, 0).unlink()
    assert load_marker(layout, 0, 0) is None
    assert load_marker(layout, 0, 1) is None  # never ran


def test_collect_markers_waits_for_a_late_marker_then_names_missing_ranks(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    import threading

    from lmforge.corpus.markers import collect_markers

    config = make_config(sharded_inputs)
    layout = Layout(tmp_path)
    shards = plan_shards(config.sources)
    for rank in (0, 1):
        run_rank(RankTask(config_key(config), str(tmp_path), 0, rank, shards[rank]))
    # Rank 1's marker shows up late, as a file written on another node can over NFS.
    marker = layout.marker(0, 1)
    hidden = marker.with_name("hidden.json")
    marker.rename(hidden)
    threading.Timer(0.6, hidden.rename, args=(marker,)).start()
    markers = collect_markers(layout, 0, 2, grace_seconds=20)
    assert [m["docs_written"] for m in markers] == [
        pq.ParquetFile(layout.phase_docs(0, r)).metadata.num_rows for r in (0, 1)
    ]
    with pytest.raises(RuntimeError, match=r"phase 0, ranks \[2\]: .*do not match"):
        collect_markers(layout, 0, 3, grace_seconds=0.2)
