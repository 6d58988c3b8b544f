"""Writers that never leave a half-written file under its final name.

Each writes to ``<name>.<pid>-<random>.tmp`` (a name unique to the attempt, so that a retried
rank never shares a temp file with a stale attempt), checks what it wrote (row count read back
from the file), then commits it: renames it atomically, or, for an output at a URL, uploads it
(:mod:`lmforge.corpus.storage`). A crash (even ``kill -9``) leaves at most a ``.tmp`` file,
which the rank removes when it is run again. A write that fails (disk full, read-only, quota)
removes its ``.tmp`` file and raises :class:`OutputError`: one line naming the file and the
cause; the finished ranks stay, so the same command resumes once the disk is fixed.

A writer created with ``write_empty=False`` writes no file at all when no row arrives
(a rank with nothing to log leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lmforge.corpus.storage import Storage, commit_local, temp_path
from lmforge.errors import LmforgeError


class OutputError(LmforgeError):
    """An output file could not be written (disk full, read-only file system, permissions)."""


def _cause(exc: OSError) -> str:
    """The OS's words for a write error ('No space left on device'), also when pyarrow
    only puts the errno into its message."""
    if exc.errno:
        return os.strerror(exc.errno)
    text = str(exc)
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EIO):
        if f"errno {code}]" in text.lower():
            return os.strerror(code)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def output_error(exc: OSError, path: Path | str) -> OutputError:
    """The one-line error for a failed write of `path`."""
    return OutputError(
        f"cannot write {path}: {_cause(exc)}; fix the disk (or use another --out) and run "
        "the same command again: finished work is kept"
    )


@contextlib.contextmanager
def writing(path: Path | str, abort: Callable[[], None]) -> Iterator[None]:
    """Run a write; on OSError call `abort` (drop the temp file) and raise OutputError."""
    try:
        yield
    except OSError as exc:
        abort()
        raise output_error(exc, path) from None


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str, storage: Storage | None = None) -> None:
    """`text` (UTF-8) at `path`, whole or not at all; through `storage` when given."""
    path = Path(path)
    tmp = temp_path(path)
    with writing(storage.location(path) if storage else path, lambda: _unlink_quietly(tmp)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        (storage.commit if storage else commit_local)(tmp, path)


def write_json_atomic(path: Path, data: Any, storage: Storage | None = None) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)
    write_text_atomic(path, text, storage)


class AtomicParquetWriter:
    """Parquet written in row groups as batches arrive.

    Created (with its schema) even when empty, unless ``write_empty=False``: then the file
    is opened at the first non-empty batch and nothing is written for a writer that gets
    none.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        compression: str = "zstd",
        use_dictionary: bool = True,
        write_empty: bool = True,
        storage: Storage | None = None,
    ) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.where = storage.location(self.path) if storage else self.path
        self._commit = storage.commit if storage else commit_local
        self.committed = False
        self.schema = schema
        self.write_empty = write_empty
        self._options = {
            "compression": None if compression == "none" else compression,
            "use_dictionary": use_dictionary,
        }
        self._writer: pq.ParquetWriter | None = None
        if write_empty:
            self._open()

    def _open(self) -> None:
        with writing(self.where, self.abort):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.tmp, self.schema, **self._options)

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if not table.num_rows:
                return
            self._open()
        with writing(self.where, self.abort):
            self._writer.write_table(
                table.cast(self.schema) if table.schema != self.schema else table
            )

    def close(self, expected_rows: int | None = None) -> None:
        if self._writer is None:  # write_empty=False and no row came
            if expected_rows:
                raise OSError(f"{self.path}: no rows written, expected {expected_rows}")
            return
        with writing(self.where, self.abort):
            self._writer.close()
            if expected_rows is not None:
                rows = pq.ParquetFile(self.tmp).metadata.num_rows
                if rows != expected_rows:
                    raise OSError(
                        f"{self.tmp}: wrote {rows} rows, expected {expected_rows} (disk full?)"
                    )
            self._commit(self.tmp, self.path)
            self.committed = True

    def abort(self) -> None:
        """Give up: close the file if it is open and remove the temp file."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # closing on a full disk fails again
                writer.close()
        _unlink_quietly(self.tmp)


class AtomicTextWriter:
    """Line-oriented text (JSONL), UTF-8."""

    def __init__(self, path: Path, storage: Storage | None = None) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.where = storage.location(self.path) if storage else self.path
        self._commit = storage.commit if storage else commit_local
        self.committed = False
        self._file = None
        with writing(self.where, self.abort):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.lines = 0

    def write_lines(self, lines: Iterable[str]) -> None:
        with writing(self.where, self.abort):
            for line in lines:
                self._file.write(line)
                self._file.write("\n")
                self.lines += 1

    def close(self, expected_rows: int | None = None) -> None:
        with writing(self.where, self.abort):
            self._file.close()
            if expected_rows is not None:
                with open(self.tmp, "rb") as f:
                    rows = sum(1 for _ in f)
                if rows != expected_rows:
                    raise OSError(
                        f"{self.tmp}: wrote {rows} lines, expected {expected_rows} (disk full?)"
                    )
            self._commit(self.tmp, self.path)
            self.committed = True

    def abort(self) -> None:
        """Give up: close the file and remove the temp file."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(Exception):
                file.close()
        _unlink_quietly(self.tmp)
