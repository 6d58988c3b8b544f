"""Completion markers: a rank's phase counts as done only when the files it certifies check out.

A marker is a JSON file holding the rank's stats and, under ``files``, the size and record
count of every file the rank wrote. On shared storage (a cluster's NFS, a bucket mounted
with FUSE) a marker can outlive or out-run its files; the driver validates before it trusts
one, and a rank whose files do not match is simply run again. Markers and files are read from
the output itself (a local folder or a URL, :mod:`lmforge.corpus.storage`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from lmforge.corpus.plan import Layout
from lmforge.corpus.storage import LocalStorage, Storage


def count_records(path: Path, storage: Storage | None = None) -> int:
    """Rows of a Parquet file (from its footer) or lines of a JSONL file."""
    with (storage or LocalStorage(path.parent)).open(path) as f:
        if path.suffix == ".parquet":
            return pq.ParquetFile(f).metadata.num_rows
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def describe_files(layout: Layout, rows: dict[Path, int]) -> dict[str, dict[str, int]]:
    """``{path relative to the output: {"bytes", "rows"}}`` for files just committed (their
    sizes as the output holds them)."""
    return {
        path.relative_to(layout.out).as_posix(): {
            "bytes": layout.storage.size(path),
            "rows": count,
        }
        for path, count in sorted(rows.items())
    }


def load_marker(layout: Layout, phase: int, rank: int) -> dict[str, Any] | None:
    """The marker's content when the rank's phase is done and its files match; else None."""
    path = layout.marker(phase, rank)
    storage = layout.storage
    try:
        marker = json.loads(storage.read_text(path))
        files = marker["files"]
        for name, expected in files.items():
            file = layout.out / name
            if storage.size(file) != expected["bytes"]:
                return None
            if count_records(file, storage) != expected["rows"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):  # missing, half-visible or corrupt
        return None
    return marker


def collect_markers(layout: Layout, phase: int, ranks: int, grace_seconds: float = 30.0) -> list:
    """Every rank's validated marker, in rank order, once the ranks have run.

    A shared file system can show a file written on another node a little late (NFS caches
    attributes and failed lookups for seconds): a marker that does not check out yet is
    looked at again for up to ``grace_seconds`` before the build stops with an error.
    """
    found: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + grace_seconds
    while True:
        for rank in range(ranks):
            if rank not in found and (marker := load_marker(layout, phase, rank)) is not None:
                found[rank] = marker
        if len(found) == ranks:
            return [found[rank] for rank in range(ranks)]
        if time.monotonic() > deadline:
            missing = sorted(set(range(ranks)) - set(found))
            raise RuntimeError(
                f"phase {phase}, ranks {missing[:10]}: their files in {layout.storage.url} do not match "
                f"their completion markers after they ran (is the output folder shared by "
                f"every node?)"
            )
        time.sleep(0.5)
