"""The collect store: three tables behind SQLAlchemy Core, on any database it speaks.

- ``records``: one row per collected item (a review from an API, a crawled page's main
  text, or an error for a page that could not be read), keyed by (source, key, content
  hash), where the key is the item's source id, else its URL, else its content hash.
  Inserting the same item again is a no-op (idempotent upsert); a changed item (same key,
  new content) is a new row. Every row records its URL, HTTP status, fetch time and error.
- ``cursors``: per source, where the next API pass starts (page, offset, cursor or URL).
- ``frontier``: per crawl source, every URL seen: pending, done, error or skipped.

A page's rows, and the cursor or frontier change it causes, are written in one
transaction: a pass killed at any point leaves either all of a page or none of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from lmforge.errors import LmforgeError

# MySQL's TEXT holds 64 KB; a page's text may be longer.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
metadata = MetaData()
# MySQL/MariaDB databases often default to latin1 (or 3-byte utf8): Chinese text and emoji
# need utf8mb4 on the tables themselves.
UTF8MB4 = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}

records = Table(
    "records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("key", Text, nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("text", LongText, nullable=False),
    Column("label", String(64)),
    Column("time", String(64)),
    Column("url", Text),
    Column("http_status", Integer),
    Column("fetched_at", DateTime, nullable=False),
    Column("error", Text),
    UniqueConstraint("source", "key_hash", "content_hash", name="uq_records_item"),
    **UTF8MB4,
)
cursors = Table(
    "cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    **UTF8MB4,
)
frontier = Table(
    "frontier",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("url_hash", String(64), nullable=False),
    Column("depth", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # pending, done, error, skipped
    Column("http_status", Integer),
    Column("error", Text),
    Column("fetched_at", DateTime),
    UniqueConstraint("source", "url_hash", name="uq_frontier_url"),
    **UTF8MB4,
)
Index("ix_frontier_pending", frontier.c.source, frontier.c.status, frontier.c.id)

PENDING, DONE, ERROR, SKIPPED = "pending", "done", "error", "skipped"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


@dataclass
class Item:
    """One record to store. ``key``: source id, else URL, else None (the content hash)."""

    text: str
    key: str | None = None
    label: str | None = None
    time: str | None = None
    url: str | None = None
    http_status: int | None = None
    error: str | None = None

    def row(self, source: str, fetched_at: datetime) -> dict[str, Any]:
        content = sha256(json.dumps([self.text, self.label, self.time, self.error]))
        key = self.key if self.key is not None else content
        return {
            "source": source,
            "key": key,
            "key_hash": sha256(key),
            "content_hash": content,
            "text": self.text,
            "label": self.label,
            "time": self.time,
            "url": self.url,
            "http_status": self.http_status,
            "fetched_at": fetched_at,
            "error": self.error,
        }


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the corpus) never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at each commit's checkpoint
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(url: str) -> str:
    """``${NAME}`` in a URL replaced by the environment variable, so that a recipe (and the
    manifests and fingerprints made from it) never holds the password itself."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise LmforgeError(f"database URL: environment variable {name} is not set")
        return quote(os.environ[name], safe="")

    return _ENV_VAR.sub(value, url)


def open_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL (``${NAME}`` taken from the environment); a SQLite
    file's folder is created. A missing driver or a bad URL is a one-line LmforgeError."""
    url = expand_env(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LmforgeError(f"store: not a SQLAlchemy database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        extra = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgres"}.get(
            parsed.get_backend_name()
        )
        hint = f" (pip install 'lmforge[{extra}]')" if extra else ""
        raise LmforgeError(f"store {parsed.render_as_string()}: no driver: {exc}{hint}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """The tables of one collect store (created on first use)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise LmforgeError(
                f"store {self.engine.url.render_as_string()}: cannot connect: {exc.orig}"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ upserts
    def _insert_ignore(self, conn: Connection, table: Table, rows: list[dict]) -> None:
        """INSERT, skipping rows whose unique key is already there, in the dialect's words."""
        if not rows:
            return
        name = conn.dialect.name
        if name in ("sqlite", "postgresql"):
            module = __import__(f"sqlalchemy.dialects.{name}", fromlist=["insert"])
            conn.execute(module.insert(table).on_conflict_do_nothing(), rows)
        elif name in ("mysql", "mariadb"):
            stmt = mysql.insert(table)
            conn.execute(stmt.on_duplicate_key_update(id=stmt.inserted.id), rows)
        else:  # other databases: look first (the transaction keeps it consistent enough)
            conn.execute(table.insert(), rows)

    def _new_items(self, conn: Connection, rows: list[dict]) -> list[dict]:
        """The rows not stored yet (also dropping repeats within ``rows``)."""
        if not rows:
            return []
        source = rows[0]["source"]
        have: set[tuple[str, str]] = set()
        hashes = sorted({r["key_hash"] for r in rows})
        for start in range(0, len(hashes), 500):
            query = select(records.c.key_hash, records.c.content_hash).where(
                records.c.source == source, records.c.key_hash.in_(hashes[start : start + 500])
            )
            have.update((k, c) for k, c in conn.execute(query))
        new = []
        for row in rows:
            ident = (row["key_hash"], row["content_hash"])
            if ident not in have:
                have.add(ident)
                new.append(row)
        return new

    def _write_items(self, conn: Connection, source: str, items: Sequence[Item]) -> int:
        stamp = now()
        new = self._new_items(conn, [item.row(source, stamp) for item in items])
        self._insert_ignore(conn, records, new)
        return len(new)

    def save_page(self, source: str, items: Sequence[Item], state: dict | None) -> int:
        """Store a page's items and the cursor that follows it, in one transaction; return
        how many items were new. ``state`` None: the source's cursor is deleted (done)."""
        with self.engine.begin() as conn:
            added = self._write_items(conn, source, items)
            self._set_state(conn, source, state)
        return added

    # ------------------------------------------------------------------ cursors
    def state(self, source: str) -> dict | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(cursors.c.state).where(cursors.c.source == source)
            ).scalar_one_or_none()
        return json.loads(value) if value is not None else None

    def _set_state(self, conn: Connection, source: str, state: dict | None) -> None:
        conn.execute(cursors.delete().where(cursors.c.source == source))
        if state is not None:
            conn.execute(
                cursors.insert(),
                {"source": source, "state": json.dumps(state, sort_keys=True), "updated_at": now()},
            )

    # ------------------------------------------------------------------ frontier
    def add_urls(self, source: str, urls: Iterable[tuple[str, int]]) -> None:
        """Put URLs (with their depth) on the frontier as pending, unless already seen."""
        with self.engine.begin() as conn:
            self._add_urls(conn, source, urls)

    def _add_urls(self, conn: Connection, source: str, urls: Iterable[tuple[str, int]]) -> int:
        rows, seen = [], set()
        for url, depth in urls:
            digest = sha256(url)
            if digest not in seen:
                seen.add(digest)
                rows.append(
                    {"source": source, "url": url, "url_hash": digest, "depth": depth}
                    | {"status": PENDING}
                )
        if not rows:
            return 0
        have: set[str] = set()
        hashes = sorted(seen)
        for start in range(0, len(hashes), 500):
            query = select(frontier.c.url_hash).where(
                frontier.c.source == source, frontier.c.url_hash.in_(hashes[start : start + 500])
            )
            have.update(conn.execute(query).scalars())
        rows = [r for r in rows if r["url_hash"] not in have]
        self._insert_ignore(conn, frontier, rows)
        return len(rows)

    def pending(self, source: str, limit: int) -> list[tuple[str, int]]:
        """The oldest pending URLs (breadth first) with their depths."""
        query = (
            select(frontier.c.url, frontier.c.depth)
            .where(frontier.c.source == source, frontier.c.status == PENDING)
            .order_by(frontier.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(u, d) for u, d in conn.execute(query)]

    def finish_url(
        self,
        source: str,
        url: str,
        status: str,
        *,
        http_status: int | None = None,
        error: str | None = None,
        items: Sequence[Item] = (),
        links: Iterable[tuple[str, int]] = (),
    ) -> int:
        """Mark a frontier URL done/error/skipped, store its items and queue its links, in
        one transaction; return the number of new items."""
        with self.engine.begin() as conn:
            added = self._write_items(conn, source, items)
            self._add_urls(conn, source, links)
            conn.execute(
                update(frontier)
                .where(frontier.c.source == source, frontier.c.url_hash == sha256(url))
                .values(status=status, http_status=http_status, error=error, fetched_at=now())
            )
        return added

    def reopen_frontier(self, source: str) -> int:
        """Start a new crawl pass: every finished URL becomes pending again (pages are
        refetched, unchanged ones add no row). Returns how many were reopened."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(frontier)
                .where(frontier.c.source == source, frontier.c.status != PENDING)
                .values(status=PENDING)
            )
        return result.rowcount or 0

    # ------------------------------------------------------------------ counts
    def counts(self, source: str | None = None) -> dict[str, int]:
        """Rows (ok / error) and frontier URLs by status."""
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            query = select(records.c.error.is_(None), func.count()).group_by(
                records.c.error.is_(None)
            )
            if source:
                query = query.where(records.c.source == source)
            for ok, n in conn.execute(query):
                out["rows" if ok else "error_rows"] = n
            query = select(frontier.c.status, func.count()).group_by(frontier.c.status)
            if source:
                query = query.where(frontier.c.source == source)
            for status, n in conn.execute(query):
                out[f"urls_{status}"] = n
        return out
