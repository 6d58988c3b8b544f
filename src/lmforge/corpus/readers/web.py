"""Web pages: an HTML file per document, and WARC archives (HTML responses); main text by
trafilatura (boilerplate such as navigation and footers removed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.readers.encoding import (
    detect_encoding,
    html_declared_encoding,
    normalize_declared,
)
from lmforge.corpus.readers.stream import (
    READ_ERRORS,
    InputStream,
    compression_of,
    file_id,
    read_file,
    record_id,
)

if TYPE_CHECKING:
    from lmforge.corpus.sources import FileSource, Shard

Record = Document | BadRecord
HTML_BYTES_PER_CHAR = 16  # markup allowance: a page may hold this many bytes per text char
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)


def decode_html(data: bytes, declared: str | None = None) -> tuple[str, str] | None:
    """(text, encoding) of an HTML payload: the charset the HTTP header or the page
    declares, else detection; a few bad bytes become U+FFFD (pages often hold some).
    None when it does not look like text."""
    encoding = (normalize_declared(declared) if declared else None) or html_declared_encoding(
        data[:4096]
    )
    if encoding is None:
        encoding = detect_encoding(data[:65536], complete=len(data) <= 65536)
        if encoding is None:
            return None
    return data.decode(encoding, errors="replace"), encoding


def extract_main_text(html: str, url: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """Main text and page metadata (title, url if found) via trafilatura; None if empty."""
    import trafilatura

    result = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False)
    if result is not None and not isinstance(result, dict):  # trafilatura >= 2 returns an object
        result = result.as_dict()
    if not result or not (result.get("text") or "").strip():
        return None
    meta = {key: result[key] for key in ("title", "url") if result.get(key)}
    return result["text"], meta


def _html_document(
    shard: Shard, source: FileSource, rid: str, where: str, data: bytes, headers: dict
) -> Record:
    decoded = decode_html(data, headers.pop("charset", None))
    if decoded is None:
        return BadRecord(rid, "binary_file", f"{where}: payload is not text")
    html, encoding = decoded
    extracted = extract_main_text(html, headers.get("url"))
    if extracted is None:
        return BadRecord(rid, "no_main_text", f"{where}: no main text found in the page")
    text, page_meta = extracted
    if len(text) > source.max_chars:
        detail = f"{where}: main text of {len(text):,} characters exceeds max_chars"
        return BadRecord(rid, "too_long", detail)
    meta = {"source": shard.source_name, "file": shard.path, **headers, **page_meta}
    meta["encoding"] = encoding
    return Document(rid, text, meta)


def read_html(shard: Shard, source: FileSource) -> Iterator[Record]:
    """One document per HTML file: its main text; meta source, file, title, url, encoding.
    Reasons: ``no_main_text``, ``too_long`` (page over 16 x max_chars bytes, or main text
    over max_chars), and the file-level ones of :func:`read_file`."""
    return read_file(shard, lambda stream: _html_body(shard, source, stream))


def _html_body(shard: Shard, source: FileSource, stream: InputStream) -> Iterator[Record]:
    limit = source.max_chars * HTML_BYTES_PER_CHAR
    data = stream.read_all(limit)
    rid = file_id(shard)
    if data is None:
        yield BadRecord(rid, "too_long", f"{shard.path}: page longer than {limit:,} bytes")
    elif stream.error is None:  # a truncated page is reported by read_file, not extracted
        yield _html_document(shard, source, rid, shard.path, data, {})


def read_warc(shard: Shard, source: FileSource) -> Iterator[Record]:
    """WARC (plain, .gz per record, or compressed whole): a document per HTML response
    record, main text via trafilatura; ids '<source>/<file>:<record number from 1>'.

    meta: source, file, record, warc_record_id, url, date, title, encoding. Records that are
    not responses, or not HTML, are skipped (they hold no text). Reasons: ``no_main_text``,
    ``too_long``, ``corrupt_record`` (the rest of the file is skipped: a damaged archive
    cannot be resynchronised safely), and the file-level ones of :func:`read_file`.
    """
    # warcio decompresses gzip members itself; other compressions are undone by fsspec
    decompress = compression_of(shard.path) != "gzip"
    body = lambda stream: _warc_body(shard, source, stream)  # noqa: E731
    return read_file(shard, body, check_binary=False, decompress=decompress)


def _header(headers: Any, name: str) -> str | None:
    return headers.get_header(name) if headers is not None else None


def _warc_body(shard: Shard, source: FileSource, stream: InputStream) -> Iterator[Record]:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    limit = source.max_chars * HTML_BYTES_PER_CHAR
    number = 0
    records = ArchiveIterator(stream)
    try:
        for record in records:
            number += 1
            if record.rec_type != "response":
                continue
            content_type = _header(record.http_headers, "Content-Type") or ""
            if content_type.split(";")[0].strip().lower() not in _HTML_TYPES:
                continue
            rid, where = record_id(shard, number), f"{shard.path}: record {number}"
            payload = record.content_stream().read(limit + 1)
            if len(payload) > limit:
                yield BadRecord(rid, "too_long", f"{where}: payload over {limit:,} bytes")
                continue
            headers: dict[str, Any] = {"record": number}
            for key, name in (("warc_record_id", "WARC-Record-ID"), ("url", "WARC-Target-URI")):
                value = _header(record.rec_headers, name)
                if value:
                    headers[key] = value
            date = _header(record.rec_headers, "WARC-Date")
            if date:
                headers["date"] = date
            charset = _CHARSET.search(content_type)
            if charset:
                headers["charset"] = charset.group(1)
            yield _html_document(shard, source, rid, where, payload, headers)
    except (ArchiveLoadFailed, ValueError, *READ_ERRORS) as exc:
        if stream.error is not None:
            return  # the stream's own error record (truncation) says it
        detail = f"{shard.path}: record {number + 1} is corrupt ({exc}); rest of file skipped"
        yield BadRecord(record_id(shard, number + 1), "corrupt_record", " ".join(detail.split()))
