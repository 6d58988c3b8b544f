"""Line-oriented formats: plain text (a document per line or per file) and JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.readers.encoding import codec_name, detect_encoding, needs_transcoding
from lmforge.corpus.readers.fields import record_to_document
from lmforge.corpus.readers.stream import (
    SAMPLE_BYTES,
    InputStream,
    file_id,
    iter_lines,
    read_file,
    record_id,
)

if TYPE_CHECKING:
    from lmforge.corpus.sources import FileSource, Shard

Record = Document | BadRecord
MAX_BYTES_PER_CHAR = 4  # UTF-8 and GB18030 use at most 4 bytes per character


def stream_encoding(stream: InputStream, declared: str) -> str | None:
    """The codec to decode this stream's lines with: the configured one, or detected from its
    first 64 KB (None: not text). A UTF-16/32 stream is transcoded to UTF-8 on the fly (its
    newlines are not one byte), and "utf-8" is returned for it."""
    if declared != "auto":
        encoding = codec_name(declared)
    else:
        sample = stream.sample()
        complete = len(sample) < SAMPLE_BYTES and stream.error is None
        encoding = detect_encoding(sample, complete=complete)
    if encoding is not None and needs_transcoding(encoding):
        stream.transcode_to_utf8(encoding)
        return "utf-8"
    return encoding


def sniff_binary(source: FileSource) -> bool:
    """Whether to judge the file binary by its control bytes: not when the recipe declares
    a UTF-16/32 codec (without a BOM, such text is half NUL bytes)."""
    return source.encoding == "auto" or not needs_transcoding(source.encoding)


def not_text_record(shard: Shard) -> BadRecord:
    detail = f"{shard.path}: not text in UTF-8, GB18030 or Big5 (binary file?); set encoding"
    return BadRecord(file_id(shard), "binary_file", detail)


def decode_line(raw: bytes, encoding: str, where: str, rid: str) -> str | BadRecord:
    """Decode one line strictly; an undecodable byte gives an ``invalid_encoding`` record
    that names the file, the line and the column."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.end]
        detail = f"{where}: invalid {encoding} bytes {bad!r} at byte {exc.start + 1} of the line"
        if encoding in ("utf-8", "utf-8-sig"):
            detail += " (set encoding if the file is not UTF-8)"
        return BadRecord(rid, "invalid_encoding", detail)


def read_txt(shard: Shard, source: FileSource) -> Iterator[Record]:
    """Plain text: a document per line (``doc_per="line"``) or per file (``"file"``).

    meta: source, file, line (per-line), encoding. Reasons: ``empty_text``, ``too_long``,
    ``invalid_encoding``, and the file-level ones of :func:`read_file`.
    """
    body = _txt_per_file if source.doc_per == "file" else _txt_per_line
    return read_file(
        shard, lambda stream: body(shard, source, stream), check_binary=sniff_binary(source)
    )


def _txt_per_line(shard: Shard, source: FileSource, stream: InputStream) -> Iterator[Record]:
    encoding = stream_encoding(stream, source.encoding)
    if encoding is None:
        yield not_text_record(shard)
        return
    limit = source.max_chars * MAX_BYTES_PER_CHAR + 1
    for lineno, raw in iter_lines(stream, limit):
        where, rid = f"{shard.path}:{lineno}", record_id(shard, lineno)
        if raw is None:
            yield BadRecord(rid, "too_long", f"{where}: line longer than {limit:,} bytes")
            continue
        text = decode_line(raw, encoding, where, rid)
        if isinstance(text, BadRecord):
            yield text
        elif len(text) > source.max_chars:
            detail = f"{where}: line of {len(text):,} characters exceeds max_chars"
            yield BadRecord(rid, "too_long", detail)
        elif not text.strip():
            yield BadRecord(rid, "empty_text", f"{where}: empty line")
        else:
            meta = {"source": shard.source_name, "file": shard.path, "line": lineno}
            meta["encoding"] = stream.transcoded_from or encoding
            yield Document(rid, text, meta)


def _txt_per_file(shard: Shard, source: FileSource, stream: InputStream) -> Iterator[Record]:
    encoding = stream_encoding(stream, source.encoding)
    rid = file_id(shard)
    if encoding is None:
        yield not_text_record(shard)
        return
    limit = source.max_chars * MAX_BYTES_PER_CHAR
    data = stream.read_all(limit)
    if data is None:
        yield BadRecord(rid, "too_long", f"{shard.path}: file longer than {limit:,} bytes")
        return
    if stream.error is not None:
        return  # read_file reports the truncation; half a file is not a document
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        detail = f"{shard.path}:{line}: invalid {encoding} bytes {data[exc.start : exc.end]!r}"
        yield BadRecord(rid, "invalid_encoding", detail)
        return
    if len(text) > source.max_chars:
        yield BadRecord(
            rid, "too_long", f"{shard.path}: {len(text):,} characters exceeds max_chars"
        )
    elif not text.strip():
        yield BadRecord(rid, "empty_text", f"{shard.path}: only whitespace")
    else:
        meta = {"source": shard.source_name, "file": shard.path}
        meta["encoding"] = stream.transcoded_from or encoding
        yield Document(rid, text, meta)


def read_jsonl(shard: Shard, source: FileSource) -> Iterator[Record]:
    """JSON Lines: one JSON object per line; ``text_field`` is the text, every other field
    goes to meta (with source, file, line).

    Reasons: ``malformed_json`` (not JSON, or not an object), ``invalid_encoding``,
    ``empty_text`` (also for a blank line), ``too_long``, ``missing_field``, ``bad_type``.
    """
    return read_file(
        shard, lambda stream: _jsonl_body(shard, source, stream), check_binary=sniff_binary(source)
    )


def _jsonl_body(shard: Shard, source: FileSource, stream: InputStream) -> Iterator[Record]:
    encoding = stream_encoding(stream, source.encoding)
    if encoding is None:
        yield not_text_record(shard)
        return
    # JSON escapes ("\\u4e2d") take up to 6 bytes per character, plus the other fields.
    limit = source.max_chars * 6 + 65536
    for lineno, raw in iter_lines(stream, limit):
        where, rid = f"{shard.path}:{lineno}", record_id(shard, lineno)
        if raw is None:
            yield BadRecord(rid, "too_long", f"{where}: line longer than {limit:,} bytes")
            continue
        line = decode_line(raw, encoding, where, rid)
        if isinstance(line, BadRecord):
            yield line
            continue
        if not line.strip():
            yield BadRecord(rid, "empty_text", f"{where}: blank line")
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            detail = f"{where}: malformed JSON ({exc.msg} at column {exc.colno})"
            yield BadRecord(rid, "malformed_json", detail)
            continue
        except RecursionError:
            yield BadRecord(rid, "malformed_json", f"{where}: JSON nested too deeply")
            continue
        if not isinstance(fields, dict):
            kind = type(fields).__name__
            detail = f"{where}: malformed JSON (a {kind}, not an object)"
            yield BadRecord(rid, "malformed_json", detail)
            continue
        base = {"source": shard.source_name, "file": shard.path, "line": lineno}
        yield record_to_document(shard, source, fields, lineno, where, base)
