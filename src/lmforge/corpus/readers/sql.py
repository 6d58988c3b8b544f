"""Rows of a SQL table or query (any SQLAlchemy URL; the collect store by default layout)
as documents, read in shards: a table with an integer key is cut into key ranges, one
shard each; a query is one shard.

``sql:URL[#TABLE_OR_QUERY]`` is also how classification data names a database: without a
fragment it means the labelled, error-free rows of a collect store's ``records`` table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from lmforge.corpus.document import BadRecord, Document
from lmforge.errors import LmforgeError

if TYPE_CHECKING:
    from lmforge.corpus.sources import Shard, SqlSource

STORE_LABELLED = (
    "SELECT text, label FROM records WHERE error IS NULL AND label IS NOT NULL ORDER BY id"
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
BATCH = 1000


@cache
def engine_for(url: str):
    """One engine per URL and process (workers of the local executor each open their own)."""
    from lmforge.collect.store import open_engine

    return open_engine(url)


def hidden(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _where(source: SqlSource) -> str:
    return f" WHERE ({source.where})" if source.where else ""


def _fail(source: SqlSource, exc: Exception) -> LmforgeError:
    detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return LmforgeError(f"sql source {hidden(source.url)}: {detail}")


def sql_shards(index: int, name: str, source: SqlSource) -> list[Shard]:
    """Key ranges of a table (``shards`` of them, by min/max of the integer key), or the
    whole query as one shard. Checks the table/query and its text column exist."""
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    from lmforge.corpus.sources import Shard

    engine = engine_for(source.url)
    path = f"{hidden(source.url)}#{source.table or 'query'}"
    try:
        with engine.connect() as conn:
            if source.query is not None:
                columns = list(
                    conn.execute(text(f"SELECT * FROM ({source.query}) q LIMIT 0")).keys()
                )
                _check_columns(source, columns)
                return [Shard(index, name, path, "sql")]
            inspector = inspect(conn)
            if not inspector.has_table(source.table):
                raise LmforgeError(f"sql source {hidden(source.url)}: no table {source.table!r}")
            info = {c["name"]: c for c in inspector.get_columns(source.table)}
            _check_columns(source, list(info))
            key = _key_column(source, inspector)
            if key is None or info[key]["type"].python_type is not int:
                return [Shard(index, name, path, "sql")]
            low, high = conn.execute(
                text(f"SELECT MIN({key}), MAX({key}) FROM {source.table}{_where(source)}")
            ).one()
    except SQLAlchemyError as exc:
        raise _fail(source, exc) from None
    if low is None:
        return [Shard(index, name, path, "sql", 0, 0)]
    count = max(1, min(source.shards, high - low + 1))
    bounds = [low + i * (high - low + 1) // count for i in range(count)] + [high + 1]
    return [Shard(index, name, path, "sql", a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _key_column(source: SqlSource, inspector) -> str | None:
    if source.id_column:
        return source.id_column
    keys = inspector.get_pk_constraint(source.table).get("constrained_columns") or []
    return keys[0] if len(keys) == 1 else None


def _check_columns(source: SqlSource, columns: list[str]) -> None:
    for col in (source.text_column, source.id_column):
        if col and col not in columns:
            raise LmforgeError(
                f"sql source {hidden(source.url)}: no column {col!r}; columns are {columns}"
            )


def read_sql(shard: Shard, source: SqlSource) -> Iterator[Document | BadRecord]:
    """The documents of one shard; NULL, non-string or empty text is a BadRecord."""
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = engine_for(source.url)
    try:
        with engine.connect() as conn:
            if source.query is not None:
                statement, key = text(source.query), source.id_column
            else:
                key = _key_column(source, inspect(conn))
                where = _where(source)
                if shard.stop is not None and key:
                    clause = f"{key} >= :start AND {key} < :stop"
                    where = f"{where} AND {clause}" if where else f" WHERE {clause}"
                order = f" ORDER BY {key}" if key else ""
                statement = text(f"SELECT * FROM {source.table}{where}{order}")
                if shard.stop is not None and key:
                    statement = statement.bindparams(start=shard.start, stop=shard.stop)
            result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(statement)
            for number, row in enumerate(result.mappings(), 1):
                yield _document(shard, source, row, key, number)
    except SQLAlchemyError as exc:
        raise _fail(source, exc) from None


def _document(
    shard: Shard, source: SqlSource, row: Any, key: str | None, number: int
) -> Document | BadRecord:
    row_id = row[key] if key and key in row else number
    rid = f"{shard.source_name}/{row_id}"
    value = row.get(source.text_column)
    if value is None:
        return BadRecord(rid, "missing_field", f"{shard.path} row {row_id}: text is NULL")
    if not isinstance(value, str):
        detail = f"{shard.path} row {row_id}: text is a {type(value).__name__}"
        return BadRecord(rid, "bad_type", detail)
    if not value.strip():
        return BadRecord(rid, "empty_text", f"{shard.path} row {row_id}: empty text")
    if len(value) > source.max_chars:
        return BadRecord(rid, "too_long", f"{shard.path} row {row_id}: over max_chars")
    meta = {"source": shard.source_name}
    for column in ("label", "url", "time"):
        if row.get(column) is not None:
            meta[column] = str(row[column])
    return Document(rid, value, meta)


def read_sql_frame(spec: str):
    """A pandas DataFrame for ``sql:URL[#TABLE_OR_QUERY]`` (classification data)."""
    import pandas as pd
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    url, _, what = spec.removeprefix("sql:").partition("#")
    if not url:
        raise LmforgeError(f"{spec!r}: write sql:URL, sql:URL#TABLE or sql:URL#SELECT ...")
    what = what.strip() or STORE_LABELLED
    query = f"SELECT * FROM {what}" if _IDENT.match(what) else what
    try:
        with engine_for(url).connect() as conn:
            return pd.read_sql(text(query), conn)
    except SQLAlchemyError as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise LmforgeError(f"sql:{hidden(url)}: {detail}") from None
