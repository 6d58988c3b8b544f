"""Read a built corpus folder (``CORPUS_DIR/data/*.parquet``) for tokenizer training and packing.

The corpus builder writes Parquet shards with columns ``id`` (string), ``text`` (string) and
``meta`` (JSON string). Here we only need ``id`` and ``text``, read shard by shard in sorted
name order and in record batches, so memory stays bounded on corpora larger than RAM.

The train/validation split is decided per document from a hash of its id and the seed, so it
does not depend on the order of the shards or of the rows inside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import xxhash

from lmforge.errors import LmforgeError

REQUIRED_COLUMNS = ("id", "text")


def corpus_shards(corpus_dir: str | Path) -> list[Path]:
    """The corpus's Parquet shards, sorted by name. Raises LmforgeError if there are none."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise LmforgeError(f"corpus folder not found: {corpus_dir}")
    data_dir = corpus_dir / "data"
    shards = sorted(data_dir.glob("*.parquet")) if data_dir.is_dir() else []
    if not shards:
        raise LmforgeError(f"no Parquet shards in {data_dir} (is {corpus_dir} a built corpus?)")
    for shard in shards:
        try:
            names = pq.read_schema(shard).names
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise LmforgeError(f"cannot read Parquet shard {shard}: {exc}") from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise LmforgeError(
                f"{shard} lacks column(s) {', '.join(missing)} (has {', '.join(names)})"
            )
    return shards


def count_documents(shards: list[Path]) -> int:
    """Number of rows over all shards, from the Parquet footers (no data read)."""
    return sum(pq.ParquetFile(s).metadata.num_rows for s in shards)


def iter_batches(
    shards: list[Path], batch_size: int = 4096
) -> Iterator[tuple[list[str], list[str]]]:
    """Yield (ids, texts) per record batch, shards in order. A null text reads as ''."""
    for shard in shards:
        parquet = pq.ParquetFile(shard)
        for batch in parquet.iter_batches(batch_size=batch_size, columns=list(REQUIRED_COLUMNS)):
            ids = [str(i) for i in batch.column("id").to_pylist()]
            texts = [t or "" for t in batch.column("text").to_pylist()]
            yield ids, texts


def validation_mask(ids: list[str], val_fraction: float, seed: int) -> np.ndarray:
    """True for the documents that go to validation: xxh64(id, seed) / 2**64 < val_fraction.

    Depends only on each id and the seed: the same documents are held out whatever the input
    order, and a larger fraction holds out a superset of a smaller one.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise LmforgeError(f"val_fraction must be in [0, 1), got {val_fraction}")
    seed = seed % 2**64
    hashes = np.fromiter(
        (xxhash.xxh64_intdigest(i.encode("utf-8"), seed=seed) for i in ids),
        dtype=np.uint64,
        count=len(ids),
    )
    threshold = np.uint64(min(int(val_fraction * 2**64), 2**64 - 1))
    return hashes < threshold


def text_digest(text: str) -> int:
    """xxh64 of a document's text: what :func:`heldout_text_digests` and ``pack_corpus``'s
    ``exclude_train`` compare."""
    return xxhash.xxh64_intdigest(text.encode("utf-8"))


def heldout_text_digests(corpus_dir: str | Path, val_fraction: float, seed: int) -> set[int]:
    """:func:`text_digest` of every document of ``corpus_dir`` that goes to validation.

    A corpus that keeps copies of a document under other ids (one that was not deduplicated)
    would otherwise train on another corpus's held-out text: pass this set as ``pack_corpus``'s
    ``exclude_train`` to keep those copies out of its train split.
    """
    digests: set[int] = set()
    for ids, texts in iter_batches(corpus_shards(corpus_dir)):
        mask = validation_mask(ids, val_fraction, seed)
        digests.update(text_digest(texts[i]) for i in np.flatnonzero(mask))
    return digests
