"""Tables: CSV/TSV (streamed line by line, header row first) and Parquet (record batches)."""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.readers.fields import record_to_document
from lmforge.corpus.readers.stream import (
    READ_ERRORS,
    InputStream,
    compression_of,
    file_id,
    iter_lines,
    open_binary,
    read_file,
    record_id,
    strip_compression,
)
from lmforge.corpus.readers.text import (
    MAX_BYTES_PER_CHAR,
    not_text_record,
    sniff_binary,
    stream_encoding,
)
from lmforge.corpus.remote import one_line

if TYPE_CHECKING:
    from lmforge.corpus.sources import FileSource, Shard

Record = Document | BadRecord
PARQUET_BATCH_ROWS = 1024


def read_csv(shard: Shard, source: FileSource) -> Iterator[Record]:
    """CSV with a header row (tab-separated when the file name ends in .tsv), streamed.

    The encoding is detected like plain text's (Excel writes GBK). ``text_field`` names the
    text column; the others go to meta with source, file, row (data rows from 1) and line
    (where the row starts). Reasons: ``malformed_csv`` (wrong number of fields, bad
    quoting), ``invalid_encoding``, ``too_long``, ``empty_text``, ``missing_field``.
    """
    return read_file(
        shard, lambda stream: _csv_body(shard, source, stream), check_binary=sniff_binary(source)
    )


class _LineFeed:
    """Decoded lines for csv.reader, remembering which lines could not be decoded or were
    too long, so the row that holds them becomes a BadRecord.

    It also remembers the lines handed out since the last row (:meth:`take_row`), and lines
    pushed back (:meth:`replay`) are handed out again first: an unclosed quote makes csv
    read on to the end of the file, and the lines after the bad one are parsed again as
    rows of their own. An iterator class, not a generator, so that it can hand out
    replayed lines after it was exhausted once.
    """

    def __init__(self, stream: InputStream, encoding: str, max_bytes: int):
        self.lines = iter_lines(stream, max_bytes)
        self.encoding = encoding
        self.problems: dict[int, tuple[str, str]] = {}
        self.taken: list[tuple[int, str]] = []
        self.pending: deque[tuple[int, str]] = deque()
        self.exhausted = False

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.pending:
            item = self.pending.popleft()
        else:
            try:
                lineno, raw = next(self.lines)
            except StopIteration:
                self.exhausted = True
                raise
            item = (lineno, self._decode(lineno, raw))
        self.taken.append(item)
        return item[1]

    def _decode(self, lineno: int, raw: bytes | None) -> str:
        if raw is None:
            self.problems[lineno] = ("too_long", "line longer than the limit")
            return "\n"
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return raw.decode(self.encoding) + "\n"
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.end]
            self.problems[lineno] = ("invalid_encoding", f"invalid {self.encoding} bytes {bad!r}")
            return raw.decode(self.encoding, errors="replace") + "\n"

    def take_row(self) -> list[tuple[int, str]]:
        """The (line number, text) of every line the last row was parsed from."""
        taken, self.taken = self.taken, []
        return taken

    def replay(self, lines: list[tuple[int, str]]) -> None:
        self.pending.extendleft(reversed(lines))

    def problem_in(self, first: int, last: int) -> tuple[int, str, str] | None:
        for lineno in range(first, last + 1):
            if lineno in self.problems:
                reason, what = self.problems.pop(lineno)
                return lineno, reason, what
        return None


def _ends_inside_quotes(lines: list[tuple[int, str]], delimiter: str) -> bool:
    """True when these lines end inside a quoted field (a quote never closed): the lenient
    csv.reader returns such a row at the end of the file instead of saying so."""
    try:
        for _ in csv.reader((text for _, text in lines), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _csv_body(shard: Shard, source: FileSource, stream: InputStream) -> Iterator[Record]:
    encoding = stream_encoding(stream, source.encoding)
    if encoding is None:
        yield not_text_record(shard)
        return
    csv.field_size_limit(max(csv.field_size_limit(), source.max_chars * MAX_BYTES_PER_CHAR))
    delimiter = "\t" if strip_compression(shard.path).lower().endswith(".tsv") else ","
    feed = _LineFeed(stream, encoding, source.max_chars * MAX_BYTES_PER_CHAR + 1)
    reader = csv.reader(feed, delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        detail = f"{shard.path}:1: unreadable header row ({exc})"
        yield BadRecord(file_id(shard), "malformed_csv", detail)
        return
    feed.take_row()
    if header is None:
        if stream.error is None:
            yield BadRecord(file_id(shard), "empty_file", f"{shard.path}: no header row")
        return
    row = 0
    while True:
        error: csv.Error | None = None
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            error, values = exc, []
        lines = feed.take_row()
        if not lines:  # an error before any line was taken: nothing left to read
            break
        row += 1
        first, last = lines[0][0], lines[-1][0]
        where, rid = f"{shard.path}:{first}", record_id(shard, row)
        if len(lines) > 1 and (
            error is not None
            or len(values) != len(header)
            or (feed.exhausted and _ends_inside_quotes(lines, delimiter))
        ):
            # A quote opened on the first line and never closed took the following lines
            # with it: that line is the bad row; the lines after it are read again as rows.
            feed.problems.pop(first, None)
            detail = f"{where}: unclosed quote (the field runs on to line {last}); row skipped"
            yield BadRecord(rid, "malformed_csv", detail)
            feed.replay(lines[1:])
            continue
        if error is not None:
            reason = "too_long" if "field limit" in str(error) else "malformed_csv"
            feed.problem_in(first, last)
            yield BadRecord(rid, reason, f"{where}: {error}")
            continue
        problem = feed.problem_in(first, last)
        if problem is not None:
            lineno, reason, what = problem
            yield BadRecord(rid, reason, f"{shard.path}:{lineno}: {what}")
        elif not values:
            yield BadRecord(rid, "empty_text", f"{where}: blank line")
        elif len(values) != len(header):
            detail = f"{where}: {len(values)} fields, the header has {len(header)}"
            yield BadRecord(rid, "malformed_csv", detail)
        else:
            base = {"source": shard.source_name, "file": shard.path, "row": row, "line": first}
            base["encoding"] = stream.transcoded_from or encoding
            yield record_to_document(
                shard, source, dict(zip(header, values, strict=True)), row, where, base
            )


def read_parquet(shard: Shard, source: FileSource) -> Iterator[Record]:
    """Parquet, one record batch at a time; ``text_field`` is the text column, the other
    columns go to meta (JSON-able) with source, file, row (from 1).

    Reasons: ``empty_file``, ``corrupt_file`` (not Parquet, or a damaged page: the rows
    before it are kept), ``unreadable_file``, and the field reasons of
    :func:`record_to_document`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fid = file_id(shard)
    try:
        handle = open_binary(shard.path)
    except (OSError, ValueError, *READ_ERRORS) as exc:
        yield BadRecord(fid, "unreadable_file", f"{shard.path}: cannot open: {one_line(exc)}")
        return
    row = 0
    try:
        if compression_of(shard.path):  # Parquet needs seeks: decompress into memory
            data = handle.read()
            if not data:
                yield BadRecord(fid, "empty_file", f"{shard.path}: file is empty")
                return
            handle.close()
            handle = io.BytesIO(data)
        elif handle.seek(0, io.SEEK_END) == 0:
            yield BadRecord(fid, "empty_file", f"{shard.path}: file is empty")
            return
        else:
            handle.seek(0)
        table = pq.ParquetFile(handle)
        for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for fields in batch.to_pylist():
                row += 1
                base = {"source": shard.source_name, "file": shard.path, "row": row}
                where = f"{shard.path}: row {row}"
                yield record_to_document(shard, source, fields, row, where, base)
    except (pa.ArrowException, *READ_ERRORS) as exc:
        reason = "truncated_file" if isinstance(exc, EOFError) else "corrupt_file"
        done = f"after row {row}; rows before it are kept" if row else "nothing read"
        detail = f"{shard.path}: not readable as Parquet ({exc}); {done}"
        yield BadRecord(fid, reason, detail.replace("\n", " "))
    finally:
        handle.close()
