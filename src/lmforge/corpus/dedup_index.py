"""Reading per-rank signature files as one corpus, and spilling keys to disk by partition.

Deduplication resolves over every rank's signature Parquet file. Documents get a
*global index* (gid): rank 0's rows first, in file order, then rank 1's, and so
on — corpus order, so the smallest gid of a duplicate group is the one kept.

Memory is bounded in two ways:

- :class:`SignatureIndex` never loads a whole column of the corpus: it streams
  each file in record batches and takes only the rows asked for.
- :class:`PartitionSpill` appends fixed-width records (a 64-bit key and a gid)
  to one binary file per partition in the step's ``workdir``; each partition is
  then loaded and resolved on its own. Records with equal keys always land in
  the same partition, so nothing is missed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

READ_BATCH = 65_536


class SignatureIndex:
    """The signature files of all ranks, addressed by global index (gid)."""

    def __init__(self, signature_files: list[Path]):
        self.files = [Path(f) for f in signature_files]
        counts = [pq.ParquetFile(f).metadata.num_rows for f in self.files]
        self.offsets = np.zeros(len(self.files) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    def iter_batches(self, columns: list[str]) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(gid of the batch's first row, batch) over the whole corpus, in corpus order."""
        for rank, path in enumerate(self.files):
            start = int(self.offsets[rank])
            for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH, columns=columns):
                yield start, batch
                start += batch.num_rows

    def take(self, column: str, gids: np.ndarray) -> pa.Array:
        """Values of ``column`` at sorted distinct ``gids``, in that order."""
        gids = np.asarray(gids, dtype=np.int64)
        parts: list[pa.Array] = []
        if len(gids) == 0:
            return pa.array([])
        lo = 0
        for rank, path in enumerate(self.files):
            hi = int(np.searchsorted(gids, self.offsets[rank + 1]))
            if hi == lo:
                continue
            want = gids[lo:hi] - self.offsets[rank]
            start = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH, columns=[column]):
                a, b = np.searchsorted(want, [start, start + batch.num_rows])
                if b > a:
                    parts.append(batch.column(0).take(pa.array(want[a:b] - start)))
                start += batch.num_rows
            lo = hi
        return pa.concat_arrays(parts)

    def locate(self, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rank, row) of sorted distinct gids; ``row`` is the pipeline's row column."""
        gids = np.asarray(gids, dtype=np.int64)
        rank = (np.searchsorted(self.offsets, gids, side="right") - 1).astype(np.int32)
        row = self.take("row", gids).to_numpy(zero_copy_only=False).astype(np.int64)
        return rank, row


SPILL_DTYPE = np.dtype([("key", "<u8"), ("gid", "<i8")])
"""The default record: a 64-bit key and the document's gid."""


class PartitionSpill:
    """Fixed-width records appended to ``n_partitions`` files per group under ``folder``.

    Records are a numpy structured dtype with a well-mixed uint64 ``key`` field
    (which chooses the partition) and a ``gid`` field.
    """

    def __init__(self, folder: Path, n_partitions: int, dtype: np.dtype = SPILL_DTYPE):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n_partitions = n_partitions
        self.dtype = np.dtype(dtype)

    def _path(self, group: int, part: int) -> Path:
        return self.folder / f"g{group:04d}_p{part:05d}.bin"

    def append(self, group: int, records: np.ndarray) -> None:
        """Append records; each goes to the partition its key's high bits choose."""
        part = ((records["key"] >> np.uint64(32)) % np.uint64(self.n_partitions)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        rec = records[order]
        bounds = np.searchsorted(part[order], np.arange(self.n_partitions + 1))
        for p in range(self.n_partitions):
            if bounds[p + 1] > bounds[p]:
                with self._path(group, p).open("ab") as f:
                    rec[bounds[p] : bounds[p + 1]].tofile(f)

    def read(self, group: int, part: int) -> np.ndarray:
        """The partition's records in append order (gids increasing when appended in corpus order)."""
        path = self._path(group, part)
        if not path.exists():
            return np.zeros(0, dtype=self.dtype)
        return np.fromfile(path, dtype=self.dtype)

    def remove(self, group: int, part: int) -> None:
        self._path(group, part).unlink(missing_ok=True)


def partitions_for(n_records: int, bytes_per_record: int, budget_bytes: int) -> int:
    """How many partitions keep one partition's records within the budget (1 = in memory)."""
    return max(1, -(-n_records * bytes_per_record // max(budget_bytes, 1)))
