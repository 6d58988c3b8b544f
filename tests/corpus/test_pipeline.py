"""The corpus builder end to end on small real data: accounting, outputs, determinism, resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from _helpers import run_lmforge, start_lmforge, wait_until
from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus
from lmforge.corpus.plan import Layout, config_key
from lmforge.corpus.rank import RankTask, run_rank
from lmforge.corpus.sources import plan_shards
from lmforge.errors import LmforgeError


def make_config(inputs: Path, **extra) -> CorpusConfig:
    return CorpusConfig(sources=[{"type": "files", "paths": [str(inputs)]}], **extra)


def removed_log(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((out / "removed").glob("*.parquet"))])


def test_every_document_is_kept_or_logged(sharded_inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    manifest = build_corpus(make_config(sharded_inputs), out, LocalExecutor(2))
    counts = manifest["counts"]
    lines = sum(
        len(p.read_text(encoding="utf-8").splitlines()) for p in sharded_inputs.glob("*.jsonl")
    )
    assert counts["read"] == lines
    kept = pd.concat([pd.read_parquet(p) for p in sorted((out / "data").glob("*.parquet"))])
    log = removed_log(out)
    assert len(kept) == counts["kept"] and len(log) == counts["removed"]
    assert counts["read"] == len(kept) + len(log)
    assert set(kept["id"]).isdisjoint(set(log["id"]))
    # The 40 planted copies (and the real duplicates in the sample) go as exact duplicates,
    # each pointing at a kept document with the same text.
    dups = log[log["reason"] == "exact_duplicate"]
    assert len(dups) >= 40
    kept_ids = set(kept["id"])
    assert set(dups["dup_of"]) <= kept_ids
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert sum(v["read"] for v in stats["sources"].values()) == counts["read"]
    assert sum(v["kept"] for v in stats["sources"].values()) == counts["kept"]
    # Metadata survives as JSON, with filter scores for re-tuning thresholds.
    meta = json.loads(kept["meta"].iloc[0])
    assert "scores" in meta and "label" in meta


def test_outputs_load_with_datasets_and_report_is_written(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "corpus"
    config = make_config(sharded_inputs, output={"formats": ["parquet", "jsonl"]})
    manifest = build_corpus(config, out, LocalExecutor(1))
    files = sorted(str(p) for p in (out / "data").glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(ds) == manifest["counts"]["kept"]
    jsonl_rows = sum(
        len(p.read_text(encoding="utf-8").splitlines()) for p in (out / "data").glob("*.jsonl")
    )
    assert jsonl_rows == manifest["counts"]["kept"]
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(1).compression == "ZSTD"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "exact_duplicate" in page and "data:image/png;base64" in page
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert sum(stats["length_hist"]["after"]) == manifest["counts"]["kept"]
    assert not (out / "_work").exists()


def test_same_config_same_output_hash_for_any_worker_count(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    one = build_corpus(make_config(sharded_inputs), tmp_path / "a", LocalExecutor(1))
    two = build_corpus(make_config(sharded_inputs), tmp_path / "b", LocalExecutor(2))
    assert one["output_hash"] == two["output_hash"]
    assert one["outputs"] == two["outputs"]


def test_resume_from_partial_state_is_byte_identical(sharded_inputs: Path, tmp_path: Path) -> None:
    config = make_config(sharded_inputs)
    reference = build_corpus(config, tmp_path / "ref", LocalExecutor(1))
    out = tmp_path / "resumed"
    # What a crash leaves: two ranks of the first phase done, a half-written temp file.
    layout = Layout(out)
    shards = plan_shards(config.sources)
    for rank in (0, 3):
        run_rank(RankTask(config_key(config), str(out), 0, rank, shards[rank]))
    layout.phase_docs(0, 1).with_suffix(".parquet.tmp").write_bytes(b"PAR1 half a file")
    done_before = layout.marker(0, 0).stat().st_mtime_ns
    resumed = build_corpus(config, out, LocalExecutor(2))
    assert resumed["output_hash"] == reference["output_hash"]
    assert resumed["counts"] == reference["counts"]
    assert done_before  # rank 0 was not redone: its marker existed before the rerun


def test_kill_9_then_rerun_gives_identical_output(sharded_inputs: Path, tmp_path: Path) -> None:
    reference = build_corpus(make_config(sharded_inputs), tmp_path / "ref", LocalExecutor(1))
    out = tmp_path / "killed"
    args = ("corpus", "build", "--input", sharded_inputs, "--out", out, "--workers", "1")
    proc = start_lmforge(*args)
    two_done = lambda: len(list((out / "_work" / "phase0").glob("done-*.json"))) >= 2  # noqa: E731
    wait_until(two_done, 120, proc, interval=0.01)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    rerun = run_lmforge(*args, timeout=300, LMFORGE_PROGRESS="0")
    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["output_hash"] == reference["output_hash"]


def test_rebuild_with_same_config_is_a_no_op_and_other_config_is_refused(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "corpus"
    first = build_corpus(make_config(sharded_inputs), out, LocalExecutor(1))
    again = build_corpus(make_config(sharded_inputs), out, LocalExecutor(1))
    assert again["output_hash"] == first["output_hash"]
    other = make_config(sharded_inputs, steps=[{"type": "length"}])
    with pytest.raises(LmforgeError, match="another config"):
        build_corpus(other, out, LocalExecutor(1))
    rebuilt = build_corpus(other, out, LocalExecutor(1), overwrite=True)
    assert rebuilt["counts"]["kept"] > first["counts"]["kept"]


def test_bad_records_are_counted_under_read(tmp_path: Path, review_sample: list[dict]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = "".join(
        json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n" for r in review_sample[:50]
    )
    (folder / "a.jsonl").write_text(good + "{not json\n", encoding="utf-8")
    (folder / "b.txt").write_bytes(
        "好评，物流很快\n".encode() + b"\xff\xfe broken \xc3\n" + "质量不错\n".encode()
    )
    (folder / "c.txt").write_bytes(b"")
    manifest = build_corpus(make_config(folder), tmp_path / "out", LocalExecutor(1))
    log = removed_log(tmp_path / "out")
    read_reasons = set(log[log["step"] == "read"]["reason"])
    assert {"malformed_json", "empty_file"} <= read_reasons
    assert manifest["counts"]["read"] == manifest["counts"]["kept"] + manifest["counts"]["removed"]


def test_missing_input_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_lmforge(
        "corpus", "build", "--input", tmp_path / "nope.txt", "--out", tmp_path / "o"
    )
    assert result.returncode == 2
    assert "not found" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
