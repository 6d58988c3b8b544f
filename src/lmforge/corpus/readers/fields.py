"""A structured record (a JSON object, a CSV row, a Parquet row) as a Document: the text
field checked, every other field kept as JSON-able metadata."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from typing import TYPE_CHECKING, Any

from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.readers.stream import record_id

if TYPE_CHECKING:
    from lmforge.corpus.sources import FileSource, Shard


def jsonable(value: Any) -> Any:
    """`value` as something json.dumps accepts: dates as ISO strings, decimals as strings,
    bytes as base64, NaN/inf as None, containers converted recursively."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def record_to_document(
    shard: Shard,
    source: FileSource,
    fields: dict[str, Any],
    position: int,
    where: str,
    base_meta: dict[str, Any],
) -> Document | BadRecord:
    """Check the record's text field and build the Document, or say why it cannot be one.

    `position` (line or row) makes the id, `where` ('file:line') starts every message,
    `base_meta` holds the reader's own keys (source, file, line/row, ...). A record field
    whose name clashes with one of them is kept as ``record_<name>``.
    Reasons: ``missing_field`` (absent or null), ``bad_type`` (not a string),
    ``too_long`` (over ``max_chars``), ``empty_text`` (empty or whitespace only).
    """
    rid = record_id(shard, position)
    key = source.text_field
    text = fields.get(key)
    if text is None:
        what = "is null" if key in fields else "is missing"
        return BadRecord(rid, "missing_field", f"{where}: text field {key!r} {what}")
    if not isinstance(text, str):
        kind = type(text).__name__
        return BadRecord(rid, "bad_type", f"{where}: text field {key!r} is a {kind}, not a string")
    if len(text) > source.max_chars:
        detail = f"{where}: text of {len(text):,} characters exceeds max_chars={source.max_chars:,}"
        return BadRecord(rid, "too_long", detail)
    if not text.strip():
        return BadRecord(rid, "empty_text", f"{where}: text field {key!r} is empty")
    if source.id_field is not None:
        own_id = fields.get(source.id_field)
        if own_id is None:
            detail = f"{where}: id field {source.id_field!r} is missing or null"
            return BadRecord(rid, "missing_field", detail)
        rid = f"{shard.source_name}/{own_id}"
    meta = {}
    for name, value in fields.items():
        if name == key:
            continue
        meta[f"record_{name}" if name in base_meta else name] = jsonable(value)
    meta.update(base_meta)
    return Document(rid, text, meta)
