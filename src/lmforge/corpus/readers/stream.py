"""Opening one input file (a local path or any fsspec URL, plain or compressed) and reading it
defensively: bounded lines, and read errors (a truncated or corrupt compressed stream) turned
into a value the reader reports as a :class:`BadRecord` instead of an exception."""

from __future__ import annotations

import codecs
import contextlib
import io
import lzma
import posixpath
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

import fsspec

from lmforge.corpus.document import BadRecord
from lmforge.corpus.readers.encoding import looks_binary
from lmforge.corpus.remote import one_line

if TYPE_CHECKING:
    from lmforge.corpus.sources import Shard

COMPRESSION_SUFFIXES = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".bz2": "bz2",
    ".xz": "xz",
}
SAMPLE_BYTES = 64 * 1024  # what encoding / binary detection looks at
CHUNK_BYTES = 1 << 20


def compression_of(path: str) -> str | None:
    """fsspec compression name from the file name ('a.txt.gz' -> 'gzip'), or None."""
    return COMPRESSION_SUFFIXES.get(posixpath.splitext(path.lower())[1])


def strip_compression(path: str) -> str:
    """'a.jsonl.zst' -> 'a.jsonl'."""
    base, ext = posixpath.splitext(path)
    return base if ext.lower() in COMPRESSION_SUFFIXES else path


def file_id(shard: Shard) -> str:
    """Id of a file-level record: '<source>/<file relative to its input root>'."""
    return f"{shard.source_name}/{shard.relpath or posixpath.basename(shard.path)}"


def record_id(shard: Shard, position: int | str) -> str:
    """Id of one record: '<source>/<relative file>:<line or row>'."""
    return f"{file_id(shard)}:{position}"


def _read_error_reason(exc: BaseException) -> str:
    return "truncated_file" if isinstance(exc, EOFError) else "corrupt_file"


# Decoding error handler for transcoded streams: an undecodable unit becomes a lone
# surrogate, which UTF-8 (surrogatepass) writes as bytes that strict UTF-8 decoding rejects.
_MARK_UNDECODABLE = "lmforge.mark_undecodable"
codecs.register_error(_MARK_UNDECODABLE, lambda exc: ("\udcff", exc.end))

# Errors a decompressor or a remote file raises on damaged input.
READ_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, lzma.LZMAError)
try:  # zstandard is a dependency, but keep the reader importable without it
    import zstandard

    READ_ERRORS = (*READ_ERRORS, zstandard.ZstdError)
except ImportError:  # pragma: no cover
    pass
try:  # the HTTP driver's errors (a connection cut while reading); aiohttp is optional
    import aiohttp

    READ_ERRORS = (*READ_ERRORS, aiohttp.ClientError)
except ImportError:
    pass


class InputStream:
    """A binary stream read in chunks that never raises on damaged data.

    The first :data:`SAMPLE_BYTES` are read ahead by :meth:`sample` (for encoding and binary
    detection) and replayed by :meth:`read`. A read error ends the stream and is kept in
    :attr:`error`; :attr:`lines` (maintained by :func:`iter_lines`) and :attr:`offset` say
    how far the reading got, for the message.
    """

    def __init__(self, raw: BinaryIO, path: str):
        self.raw = raw
        self.path = path
        self.error: BaseException | None = None
        self.offset = 0  # decompressed bytes handed out
        self.lines = 0  # complete lines handed out by iter_lines
        self._ahead = b""
        self._sampled = False
        self._read1 = getattr(raw, "read1", None) or raw.read
        self._decoder: codecs.IncrementalDecoder | None = None
        self.transcoded_from: str | None = None  # the file's own codec when transcoded

    def transcode_to_utf8(self, encoding: str) -> None:
        """From now on :meth:`read` hands out UTF-8 instead of `encoding` (UTF-16/32, whose
        newlines are not the byte b"\\n"), so line splitting and per-line decoding work
        unchanged. Undecodable units (a lone surrogate, a cut last character) come out as
        bytes that are not UTF-8, so the line that holds them is counted as
        ``invalid_encoding``, not silently repaired."""
        self._decoder = codecs.getincrementaldecoder(encoding)(errors=_MARK_UNDECODABLE)
        self.transcoded_from = encoding

    def _raw_read(self, size: int) -> bytes:
        if self.error is not None:
            return b""
        try:
            # read1 returns what one decompression step produced, so data decoded right
            # before a truncation is not lost with the exception.
            return self._read1(size)
        except READ_ERRORS as exc:
            self.error = exc
            return b""

    def sample(self) -> bytes:
        """Up to SAMPLE_BYTES from the start of the stream (less only at end of file or error)."""
        if not self._sampled:
            parts, size = [], 0
            while size < SAMPLE_BYTES:
                part = self._raw_read(SAMPLE_BYTES - size)
                if not part:
                    break
                parts.append(part)
                size += len(part)
            self._ahead = b"".join(parts)
            self._sampled = True
        return self._ahead

    def _next_bytes(self, size: int) -> bytes:
        if self._ahead:
            out, self._ahead = self._ahead[:size], self._ahead[size:]
        else:
            out = self._raw_read(size)
        self._sampled = True
        self.offset += len(out)
        return out

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        """Next chunk (any length up to about `size`); b'' at end of file or after an error."""
        if self._decoder is None:
            return self._next_bytes(size)
        while True:  # a chunk may end inside a character: read on until text comes out
            data = self._next_bytes(size)
            text = self._decoder.decode(data, final=not data)
            if text or not data:
                return text.encode("utf-8", errors="surrogatepass")

    def read_all(self, limit: int) -> bytes | None:
        """The rest of the stream, or None as soon as it proves longer than `limit` bytes
        (nothing more is read then)."""
        parts, size = [], 0
        while chunk := self.read():
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(*READ_ERRORS):  # closing a damaged stream can fail again
            self.raw.close()

    def error_record(self, shard: Shard) -> BadRecord | None:
        """The BadRecord for a read error, naming the file and how far reading got."""
        if self.error is None:
            return None
        reason = _read_error_reason(self.error)
        where = f"after line {self.lines}" if self.lines else f"after {self.offset} bytes"
        what = "file ends early" if reason == "truncated_file" else "file is corrupt"
        detail = f"{self.path}: {what} ({one_line(self.error)}) {where}; records before it are kept"
        return BadRecord(file_id(shard), reason, detail)


def iter_lines(stream: InputStream, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """Yield (line number from 1, line without its '\\n') for every line of the stream.

    A line longer than `max_bytes` is yielded as None and never held in memory: at most
    `max_bytes` plus one chunk are kept at any time. Only '\\n' ends a line (not the other
    characters ``str.splitlines`` splits on). A last line cut by a read error is dropped:
    the stream's error record stands for it.
    """
    pending: list[bytes] = []
    pending_len = 0
    too_long = False
    lineno = 0
    while chunk := stream.read():
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            if not too_long:
                pending.append(chunk)
                pending_len += len(chunk)
                if pending_len > max_bytes:
                    too_long, pending = True, []
            continue
        lineno += 1
        first = parts[0]
        if too_long or pending_len + len(first) > max_bytes:
            stream.lines = lineno
            yield lineno, None
        else:
            stream.lines = lineno
            yield lineno, (b"".join((*pending, first)) if pending else first)
        for line in parts[1:-1]:
            lineno += 1
            stream.lines = lineno
            yield lineno, (line if len(line) <= max_bytes else None)
        last = parts[-1]
        pending_len = len(last)
        too_long = pending_len > max_bytes
        pending = [last] if last and not too_long else []
    if (pending or too_long) and stream.error is None:
        lineno += 1
        stream.lines = lineno
        yield lineno, (None if too_long else b"".join(pending))


class ZstdReader(io.RawIOBase):
    """A zstd stream of one or more frames, decompressed; EOFError when the last frame is cut.

    (fsspec's zstd opener stops after the first frame and says nothing about a truncated
    one.) Compressed input is fed in small pieces so that one read cannot expand into a
    huge buffer.
    """

    INPUT_BYTES = 16 * 1024

    def __init__(self, fileobj: BinaryIO):
        import zstandard

        self._file = fileobj
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = self._dctx.decompressobj()
        self._fed = False  # the current frame has received input
        self._out = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._out and not self._done:
            data = self._file.read(self.INPUT_BYTES)
            if not data:
                if self._fed and not self._frame.eof:
                    raise EOFError("zstd stream ended before the end of its last frame")
                self._done = True
                return
            while data:
                if self._frame.eof:
                    self._frame, self._fed = self._dctx.decompressobj(), False
                self._out += self._frame.decompress(data)
                self._fed = True
                data = self._frame.unused_data if self._frame.eof else b""

    def readinto(self, buffer) -> int:
        self._fill()
        size = min(len(buffer), len(self._out))
        buffer[:size] = self._out[:size]
        self._out = self._out[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open_binary(path: str, *, decompress: bool = True) -> BinaryIO:
    """The file at `path` (local or fsspec URL), decompressed by its suffix unless told not
    to. Raises OSError (or ValueError for a bad URL) when it cannot be opened."""
    compression = compression_of(path) if decompress else None
    if compression == "zstd":
        return io.BufferedReader(ZstdReader(fsspec.open(path, "rb").open()), CHUNK_BYTES)
    return fsspec.open(path, "rb", compression=compression).open()


def open_input(shard: Shard, *, decompress: bool = True) -> InputStream:
    """The shard's file as an :class:`InputStream` (see :func:`open_binary`)."""
    return InputStream(open_binary(shard.path, decompress=decompress), shard.path)


def read_file(
    shard: Shard, body, *, check_binary: bool = True, decompress: bool = True
) -> Iterator[BadRecord | object]:
    """Run ``body(stream)`` (a generator of records) on the shard's file with the checks every
    format shares: unreadable file, empty file, binary file (a high share of NUL and control
    bytes in the first 64 KB, see :func:`looks_binary`), and a read error (truncation, corruption) reported after the records read before it."""
    fid = file_id(shard)
    try:
        stream = open_input(shard, decompress=decompress)
    except (OSError, ValueError, *READ_ERRORS) as exc:
        yield BadRecord(fid, "unreadable_file", f"{shard.path}: cannot open: {one_line(exc)}")
        return
    try:
        sample = stream.sample()
        if not sample:
            yield stream.error_record(shard) or BadRecord(
                fid, "empty_file", f"{shard.path}: file is empty"
            )
            return
        if check_binary and looks_binary(sample):
            yield BadRecord(
                fid,
                "binary_file",
                f"{shard.path}: mostly NUL and control bytes in the first "
                f"{len(sample):,} bytes; not a text file",
            )
            return
        yield from body(stream)
        bad = stream.error_record(shard)
        if bad is not None:
            yield bad
    finally:
        stream.close()
