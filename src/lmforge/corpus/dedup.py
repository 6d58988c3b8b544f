"""Deduplication steps: exact (hash of normalised text) and near-duplicate (MinHash-LSH).

Both are :class:`~lmforge.corpus.step.GlobalStep` s. ``signature`` runs on every
rank in parallel (the MinHash signatures, the expensive part, use all cores
through the pipeline's executor); ``resolve`` runs once over all ranks'
signature files and returns the rows to drop. In every duplicate group the
first document in corpus order (rank, row) is kept; the others are removed
with ``dup_of`` = the kept document's id.

Memory: when the keys of the whole corpus would not fit in
``memory_budget_mb``, they are spilled to ``workdir`` in hash partitions
(per LSH band for MinHash) and resolved one partition at a time; memory is then
bounded by one partition plus what is proportional to the duplicates found.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import BaseModel, Field, model_validator

from lmforge.corpus import minhash as mh
from lmforge.corpus.dedup_index import PartitionSpill, SignatureIndex, partitions_for
from lmforge.corpus.document import Document
from lmforge.corpus.step import REMOVED_SCHEMA, GlobalStep, StepLog

EXCERPT_CHARS = 40
_NON_WORD = re.compile(r"[\W_]+")


def _strings(array: pa.Array) -> list[str]:
    return [] if len(array) == 0 else array.to_pylist()


def _removed_table(
    index: SignatureIndex, removed: np.ndarray, kept: np.ndarray, reason: str
) -> pa.Table:
    """Table of removed gids (with the kept gid of each) in corpus order, as REMOVED_SCHEMA."""
    if len(removed) == 0:
        return REMOVED_SCHEMA.empty_table()
    order = np.argsort(removed, kind="stable")
    removed, kept = removed[order], kept[order]
    rank, row = index.locate(removed)
    kept_unique, kept_inverse = np.unique(kept, return_inverse=True)
    kept_ids = np.array(_strings(index.take("id", kept_unique)), dtype=object)
    return pa.table(
        {
            "rank": pa.array(rank, pa.int32()),
            "row": pa.array(row, pa.int64()),
            "reason": pa.array([reason] * len(removed), pa.string()),
            "dup_of": pa.array(kept_ids[kept_inverse], pa.string()),
        },
        schema=REMOVED_SCHEMA,
    )


def _describe_groups(
    index: SignatureIndex, groups: list[tuple[int, int, list[int]]]
) -> list[dict[str, Any]]:
    """JSON-able description of (size, kept gid, example gids) groups."""
    wanted = np.unique([g for _, kept, ex in groups for g in [kept, *ex]]).astype(np.int64)
    ids = dict(zip(wanted.tolist(), _strings(index.take("id", wanted)), strict=True))
    texts = dict(zip(wanted.tolist(), _strings(index.take("excerpt", wanted)), strict=True))
    return [
        {
            "size": size,
            "kept_id": ids[kept],
            "excerpt": texts[kept],
            "examples": [{"id": ids[g], "excerpt": texts[g]} for g in examples],
        }
        for size, kept, examples in groups
    ]


# ----------------------------------------------------------------------------- exact


class ExactDedupConfig(BaseModel, extra="forbid"):
    """Exact deduplication on a 128-bit xxh3 hash of the (normalised) text."""

    type: Literal["exact_dedup"] = "exact_dedup"
    enabled: bool = True
    normalize: Literal["none", "lower_no_punct"] = Field(
        "lower_no_punct",
        description="'none': the text as is; 'lower_no_punct': lowercased, whitespace, "
        "punctuation and symbols removed (a text with nothing left is hashed as is)",
    )
    memory_budget_mb: float = Field(1024, gt=0, description="above this, spill hashes to workdir")
    report_groups: int = Field(10, ge=0, description="largest duplicate groups in the report")


def normalize_for_exact(text: str, mode: str) -> str:
    """The text whose hash decides exact duplicates."""
    if mode == "none":
        return text
    stripped = _NON_WORD.sub("", text.lower())
    return stripped or text


_EXACT_DTYPE = np.dtype([("key", "<u8"), ("key2", "<u8"), ("gid", "<i8")])


class ExactDeduplicator(GlobalStep):
    """Removes documents whose normalised text equals an earlier document's (reason ``exact_duplicate``)."""

    name = "exact_dedup"
    reason = "exact_duplicate"

    def __init__(self, config: ExactDedupConfig | None = None):
        self.config = config or ExactDedupConfig()
        self._extra: dict[str, Any] = {}

    def signature(self, docs: list[Document]) -> pa.Table:
        mode = self.config.normalize
        digests = [
            xxhash.xxh3_128_intdigest(
                normalize_for_exact(d.text, mode).encode("utf-8", "surrogatepass")
            )
            for d in docs
        ]
        mask = (1 << 64) - 1
        return pa.table(
            {
                "id": pa.array([d.id for d in docs], pa.string()),
                "hash_hi": pa.array([h >> 64 for h in digests], pa.uint64()),
                "hash_lo": pa.array([h & mask for h in digests], pa.uint64()),
                "excerpt": pa.array([d.text[:EXCERPT_CHARS] for d in docs], pa.string()),
            }
        )

    def _records(self, start: int, batch: pa.RecordBatch) -> np.ndarray:
        rec = np.empty(batch.num_rows, dtype=_EXACT_DTYPE)
        rec["key"] = batch.column(0).to_numpy()
        rec["key2"] = batch.column(1).to_numpy()
        rec["gid"] = np.arange(start, start + batch.num_rows)
        return rec

    def resolve(self, signature_files: list[Path], workdir: Path, log: StepLog) -> pa.Table:
        index = SignatureIndex(signature_files)
        budget = int(self.config.memory_budget_mb * 2**20)
        n_parts = partitions_for(index.total, _EXACT_DTYPE.itemsize, budget)
        columns = ["hash_hi", "hash_lo"]
        removed, kept, groups = [], [], []

        def resolve_part(rec: np.ndarray) -> None:
            if len(rec) < 2:
                return
            rec = rec[np.lexsort((rec["gid"], rec["key2"], rec["key"]))]
            new = np.r_[
                True, (rec["key"][1:] != rec["key"][:-1]) | (rec["key2"][1:] != rec["key2"][:-1])
            ]
            group = np.cumsum(new) - 1
            first = rec["gid"][new]
            dup = ~new
            removed.append(rec["gid"][dup])
            kept.append(first[group[dup]])
            sizes = np.bincount(group)
            multi = np.flatnonzero(sizes > 1)
            groups.append(np.stack([sizes[multi], first[multi]], axis=1))

        if n_parts == 1:
            parts = [self._records(s, b) for s, b in index.iter_batches(columns)]
            resolve_part(np.concatenate(parts) if parts else np.zeros(0, _EXACT_DTYPE))
        else:
            spill = PartitionSpill(Path(workdir) / "exact_hashes", n_parts, _EXACT_DTYPE)
            for start, batch in index.iter_batches(columns):
                spill.append(0, self._records(start, batch))
            for p in range(n_parts):
                resolve_part(spill.read(0, p))
                spill.remove(0, p)
            log.count("spill_partitions", n_parts)

        removed_gids = np.concatenate(removed) if removed else np.zeros(0, np.int64)
        kept_gids = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        group_arr = np.concatenate(groups) if groups else np.zeros((0, 2), np.int64)
        log.count("duplicate_groups", len(group_arr))
        log.count("documents_in_groups", int(group_arr[:, 0].sum()) if len(group_arr) else 0)
        top = group_arr[np.lexsort((group_arr[:, 1], -group_arr[:, 0]))][
            : self.config.report_groups
        ]
        self._extra = {
            "documents": index.total,
            "removed": len(removed_gids),
            "duplicate_groups": len(group_arr),
            "largest_groups": _describe_groups(index, [(int(s), int(k), []) for s, k in top]),
        }
        return _removed_table(index, removed_gids, kept_gids, self.reason)

    def report_extra(self) -> dict[str, Any]:
        return self._extra


# ----------------------------------------------------------------------------- MinHash


class MinHashDedupConfig(BaseModel, extra="forbid"):
    """Near-duplicate removal by MinHash-LSH over character n-grams (see docs/benchmarks)."""

    type: Literal["minhash_dedup"] = "minhash_dedup"
    enabled: bool = True
    shingle_size: int = Field(
        5, ge=1, description="characters per shingle; shorter texts are one shingle"
    )
    num_perm: int = Field(128, ge=1, le=4096, description="MinHash permutations")
    bands: int | None = Field(
        16, ge=1, description="LSH bands; None with rows=None: chosen from threshold"
    )
    rows: int | None = Field(8, ge=1, description="signature values per band")
    threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Jaccard similarity of a near-duplicate"
    )
    verify: Literal["exact", "signature", "none"] = Field(
        "exact",
        description="check candidate pairs: exact Jaccard of shingle sets, MinHash estimate, or not at all",
    )
    fn_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="weight of misses when choosing bands"
    )
    seed: int = Field(1, description="seed of the hash permutations")
    max_bucket: int = Field(
        256, ge=2, description="larger LSH buckets give (first, other) pairs only"
    )
    memory_budget_mb: float = Field(
        1024, gt=0, description="above this, spill band hashes to workdir"
    )
    report_clusters: int = Field(10, ge=0, description="largest clusters in the report")

    @model_validator(mode="after")
    def _check_banding(self) -> MinHashDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError(
                "set both bands and rows, or neither (then they are chosen from threshold)"
            )
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands × rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
            )
        return self

    def banding(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return mh.optimal_bands(self.threshold, self.num_perm, 1.0 - self.fn_weight, self.fn_weight)


class MinHashDeduplicator(GlobalStep):
    """Removes near-duplicates (reason ``near_duplicate``): keeps the first document of each cluster."""

    name = "minhash_dedup"
    reason = "near_duplicate"

    def __init__(self, config: MinHashDedupConfig | None = None):
        self.config = config or MinHashDedupConfig()
        self.bands, self.rows = self.config.banding()
        self._extra: dict[str, Any] = {}
        self.candidate_pairs = np.zeros((0, 2), np.int64)
        self.pairs = np.zeros((0, 2), np.int64)

    def signature(self, docs: list[Document]) -> pa.Table:
        cfg = self.config
        texts = [d.text for d in docs]
        sig = np.empty((len(texts), cfg.num_perm), dtype=np.uint32)
        set_values, set_lengths = [], []
        for lo, hi, hashes, offsets in mh.iter_shingle_chunks(texts, cfg.shingle_size):
            sig[lo:hi] = mh.signatures_from_hashes(hashes, offsets, cfg.num_perm, cfg.seed)
            if cfg.verify == "exact":
                values, set_offsets = mh.shingle_sets(hashes, offsets)
                set_values.append(values)
                set_lengths.append(np.diff(set_offsets))
        bands = mh.band_hashes(sig, self.bands, self.rows)
        columns: dict[str, pa.Array] = {
            "id": pa.array([d.id for d in docs], pa.string()),
            "bands": pa.FixedSizeListArray.from_arrays(pa.array(bands.ravel()), self.bands),
        }
        if cfg.verify == "signature":
            columns["sig"] = pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel()), cfg.num_perm)
        if cfg.verify == "exact":
            lengths = np.concatenate(set_lengths) if set_lengths else np.zeros(0, np.int64)
            offsets = np.zeros(len(texts) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            values = np.concatenate(set_values) if set_values else np.zeros(0, np.uint32)
            columns["shingles"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
        columns["excerpt"] = pa.array([t[:EXCERPT_CHARS] for t in texts], pa.string())
        return pa.table(columns)

    def _band_matrix(self, batch: pa.RecordBatch) -> np.ndarray:
        return batch.column(0).flatten().to_numpy().reshape(-1, self.bands)

    def candidates(
        self, index: SignatureIndex, workdir: Path, log: StepLog
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (gid, gid) pairs sharing at least one band hash, and how many bands each shares.

        Band hashes are spilled to ``workdir`` (per band, in hash partitions) when
        the corpus' band matrix would not fit in ``memory_budget_mb``.
        """
        n, budget = index.total, int(self.config.memory_budget_mb * 2**20)
        if n >= 3_000_000_000:
            raise ValueError("minhash_dedup: more than 3e9 documents in one run are not supported")
        keys, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)

        def add(pairs: np.ndarray) -> None:
            nonlocal keys, counts
            keys, counts = mh.merge_pair_counts(keys, counts, pairs[:, 0] * n + pairs[:, 1])

        if n * self.bands * 8 <= budget:
            matrix = np.empty((n, self.bands), dtype=np.uint64)
            for start, batch in index.iter_batches(["bands"]):
                matrix[start : start + batch.num_rows] = self._band_matrix(batch)
            gids = np.arange(n, dtype=np.int64)
            for band in range(self.bands):
                add(mh.bucket_pairs(matrix[:, band], gids, self.config.max_bucket))
        else:
            n_parts = partitions_for(n, 16, budget)
            spill = PartitionSpill(Path(workdir) / "minhash_bands", n_parts)
            for start, batch in index.iter_batches(["bands"]):
                matrix = self._band_matrix(batch)
                rec = np.empty(len(matrix), dtype=spill.dtype)
                rec["gid"] = np.arange(start, start + len(matrix))
                for band in range(self.bands):
                    rec["key"] = matrix[:, band]
                    spill.append(band, rec)
            for band in range(self.bands):
                for p in range(n_parts):
                    rec = spill.read(band, p)
                    add(mh.bucket_pairs(rec["key"], rec["gid"], self.config.max_bucket))
                    spill.remove(band, p)
            log.count("spill_partitions", n_parts * self.bands)
        return np.stack([keys // max(n, 1), keys % max(n, 1)], axis=1), counts

    def verify(
        self, index: SignatureIndex, pairs: np.ndarray, bands_shared: np.ndarray
    ) -> np.ndarray:
        """The candidate pairs whose similarity reaches the threshold (all of them if verify='none').

        A pair that agrees on every band has all ``bands × rows`` MinHash values
        equal: it is accepted without a check (the chance that its Jaccard is below
        0.8 is 0.8^128 ≈ 4·10⁻¹³). This skips the exact copies, usually most pairs.
        """
        cfg = self.config
        if cfg.verify == "none" or len(pairs) == 0:
            return pairs
        same = bands_shared >= self.bands
        if same.all():
            return pairs
        checked = pairs[~same]
        ok = self._similar(index, checked)
        keep = same.copy()
        keep[~same] = ok
        return pairs[keep]

    def _similar(self, index: SignatureIndex, pairs: np.ndarray) -> np.ndarray:
        cfg = self.config
        nodes = mh.sorted_unique(pairs.ravel())
        ia, ib = np.searchsorted(nodes, pairs[:, 0]), np.searchsorted(nodes, pairs[:, 1])
        if cfg.verify == "signature":
            sig = index.take("sig", nodes).flatten().to_numpy().reshape(-1, cfg.num_perm)
            sim = np.concatenate(
                [
                    mh.estimated_jaccard(sig[ia[i : i + 65536]], sig[ib[i : i + 65536]])
                    for i in range(0, len(pairs), 65536)
                ]
            )
        else:
            lists = index.take("shingles", nodes)
            values = lists.flatten().to_numpy().astype(np.uint64)
            offsets = lists.offsets.to_numpy().astype(np.int64)
            sim = mh.exact_jaccard_pairs(values, offsets - offsets[0], ia, ib)
        return sim >= cfg.threshold

    def find_pairs(
        self, signature_files: list[Path], workdir: Path, log: StepLog
    ) -> SignatureIndex:
        """Fill ``candidate_pairs`` and ``pairs`` (verified) with gids; return the index used."""
        index = SignatureIndex(signature_files)
        self.candidate_pairs, bands_shared = self.candidates(index, workdir, log)
        self.pairs = self.verify(index, self.candidate_pairs, bands_shared)
        return index

    def resolve(self, signature_files: list[Path], workdir: Path, log: StepLog) -> pa.Table:
        index = self.find_pairs(signature_files, workdir, log)
        nodes, root = mh.connected_components(self.pairs)
        dup = nodes != root
        roots, sizes = np.unique(root, return_counts=True)
        log.count("candidate_pairs", len(self.candidate_pairs))
        log.count("duplicate_pairs", len(self.pairs))
        log.count("clusters", len(roots))
        log.count("documents_in_clusters", len(nodes))
        top = np.lexsort((roots, -sizes))[: self.config.report_clusters]
        groups = [
            (int(sizes[t]), int(roots[t]), nodes[(root == roots[t]) & dup][:3].tolist())
            for t in top
        ]
        self._extra = {
            "documents": index.total,
            "bands": self.bands,
            "rows": self.rows,
            "candidate_pairs": len(self.candidate_pairs),
            "duplicate_pairs": len(self.pairs),
            "clusters": len(roots),
            "removed": int(dup.sum()),
            "largest_clusters": _describe_groups(index, groups),
        }
        return _removed_table(index, nodes[dup], root[dup], self.reason)

    def report_extra(self) -> dict[str, Any]:
        return self._extra


STEPS = {
    "exact_dedup": (ExactDedupConfig, ExactDeduplicator),
    "minhash_dedup": (MinHashDedupConfig, MinHashDeduplicator),
}
