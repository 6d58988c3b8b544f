"""Writers that never leave a half-written file under its final name.

Each writes to ``<name>.tmp``, checks what it wrote (row count read back from the
file), then renames atomically. A crash (even ``kill -9``) leaves at most a ``.tmp``
file, which the next run overwrites.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _commit(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    _commit(tmp, path)


class AtomicParquetWriter:
    """Parquet written in row groups as batches arrive; created (with its schema) even when empty."""

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        compression: str = "zstd",
        use_dictionary: bool = True,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp(self.path)
        self.schema = schema
        self._writer = pq.ParquetWriter(
            self.tmp,
            schema,
            compression=None if compression == "none" else compression,
            use_dictionary=use_dictionary,
        )

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table.cast(self.schema) if table.schema != self.schema else table)

    def close(self, expected_rows: int | None = None) -> None:
        self._writer.close()
        if expected_rows is not None:
            rows = pq.ParquetFile(self.tmp).metadata.num_rows
            if rows != expected_rows:
                raise OSError(
                    f"{self.tmp}: wrote {rows} rows, expected {expected_rows} (disk full?)"
                )
        _commit(self.tmp, self.path)


class AtomicTextWriter:
    """Line-oriented text (JSONL), UTF-8."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp(self.path)
        self._file = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.lines = 0

    def write_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._file.write(line)
            self._file.write("\n")
            self.lines += 1

    def close(self, expected_rows: int | None = None) -> None:
        self._file.close()
        if expected_rows is not None:
            with open(self.tmp, "rb") as f:
                rows = sum(1 for _ in f)
            if rows != expected_rows:
                raise OSError(
                    f"{self.tmp}: wrote {rows} lines, expected {expected_rows} (disk full?)"
                )
        _commit(self.tmp, self.path)
