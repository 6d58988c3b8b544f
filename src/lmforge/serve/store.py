"""The prediction log: every served answer as a row in a SQL table, for monitoring and relabelling.

``PredictionLog(url)`` takes a SQLAlchemy URL (``postgresql://...``, ``sqlite:///x.db``) or a
plain path (a SQLite file). Rows go through a bounded in-memory queue to one background
thread that inserts them in batches, so a response never waits for the database: when the
queue is full, or the database fails, rows are dropped and counted (``dropped``; the app
exports it as ``lmforge_prediction_log_rows_total{outcome="dropped"}``), never raised.

One client's row never costs another client's: text that UTF-8 cannot encode (a lone surrogate
such as ``"\\ud800"``, which JSON allows) is stored with U+FFFD in its place, and when the
database refuses a batch for what is in it (not because it is down), the batch is split in
halves until only the rows it refuses are dropped.

Privacy: the writer thread passes each text through ``mask`` before it is stored (the app gives
the corpus PII masker, :class:`lmforge.corpus.pii.Pii`: phone numbers, ID-card and bank-card
numbers, e-mail addresses, URLs and IPs become ``<PHONE>``, ``<ID_CARD>``, ...), so the raw text
never reaches the database; and it deletes rows older than ``retention_days`` and all but the
newest ``retention_rows`` at start and every ``retention_every_s`` (counted as ``expired``).

Drops are logged at most once per ``log_every_s`` seconds, as a count and the error *classes*:
never the exception text, which for SQLAlchemy holds the statement's parameters (the users'
texts), and never the URL's password.

Table ``lmforge_predictions``: id, created_at (UTC), request_id, model, version, text, label,
score, probabilities (JSON text), truncated.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

log = logging.getLogger(__name__)

TABLE = "lmforge_predictions"


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value):
    """``value`` as the database can take it: a str with lone surrogates replaced (U+FFFD)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", value)
    return value


def _is_outage(exc: Exception) -> bool:
    """The database is unreachable or broken (every row would fail), not refusing a row."""
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def database_url(target: str) -> str:
    """A SQLAlchemy URL as given, or ``sqlite:///<absolute path>`` for a plain path."""
    if "://" in target:
        return target
    path = Path(target).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def predictions_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("request_id", sa.String(64), index=True),
        sa.Column("model", sa.String(200)),
        sa.Column("version", sa.String(100)),
        sa.Column("text", sa.Text),
        sa.Column("label", sa.String(200), index=True),
        sa.Column("score", sa.Float),
        sa.Column("probabilities", sa.Text),
        sa.Column("truncated", sa.Boolean),
    )


class PredictionLog:
    """Write prediction rows off the request path; drop and count rather than block or fail."""

    def __init__(
        self,
        url: str,
        max_queue: int = 10_000,
        batch_rows: int = 500,
        on_outcome: Callable[[str, int], None] | None = None,
        log_every_s: float = 60.0,
        mask: Callable[[str], str] | None = None,
        retention_days: float | None = None,
        retention_rows: int | None = None,
        retention_every_s: float = 300.0,
    ):
        self.url = database_url(url)
        self.mask = mask
        self.retention_days = retention_days
        self.retention_rows = retention_rows
        self.retention_every_s = retention_every_s
        self.expired = 0
        self.log_every_s = log_every_s
        self._unlogged: Counter[str] = Counter()  # rows dropped since the last warning, by cause
        self._last_logged = float("-inf")
        self._drop_lock = threading.Lock()  # the request side (queue full) and the writer drop
        self.batch_rows = batch_rows
        self.on_outcome = on_outcome
        self.written = 0
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: sa.Engine | None = None
        self._table = predictions_table(sa.MetaData())
        from lmforge.serve.feedback import feedback_table

        self._feedback = feedback_table(self._table.metadata)  # beside the predictions

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect and create the table if needed (failures are logged; rows then drop)."""
        try:
            self._engine = sa.create_engine(self.url)
            self._table.metadata.create_all(self._engine)
        except Exception as exc:
            shown = sa.engine.make_url(self.url).render_as_string(hide_password=True)
            log.warning(
                "prediction log %s unavailable (%s), rows will be dropped",
                shown,
                type(exc).__name__,
            )
            self._engine = None
        self._thread = threading.Thread(target=self._loop, name="lmforge-prediction-log")
        self._thread.daemon = True
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout`` seconds), then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._log_drops(force=True)
        if self._engine is not None:
            self._engine.dispose()

    # -- the request side: never blocks ------------------------------------------------------
    def add(self, rows: list[dict]) -> None:
        """Queue rows (dicts with the table's columns but ``id``/``created_at``); never raises."""
        now = datetime.now(timezone.utc)
        for row in rows:
            try:
                self._queue.put_nowait(
                    {"created_at": now, **{k: storable(v) for k, v in row.items()}}
                )
            except queue.Full:
                self._drop(1, "queue full")

    @staticmethod
    def rows(request_id: str, model: str, version: str, texts, answers) -> list[dict]:
        return [
            {
                "request_id": request_id,
                "model": model,
                "version": version,
                "text": text,
                "label": a.label,
                "score": a.score,
                "probabilities": json.dumps(a.probabilities, ensure_ascii=False),
                "truncated": a.truncated,
            }
            for text, a in zip(texts, answers, strict=True)
        ]

    # -- the writer thread -------------------------------------------------------------------
    def _count(self, outcome: str, n: int) -> None:
        if outcome == "written":
            self.written += n
        elif outcome == "expired":
            self.expired += n
        else:
            self.dropped += n
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome, n)
            except Exception:
                log.exception("prediction log counter failed")

    def _drop(self, n: int, cause: str) -> None:
        self._count("dropped", n)
        with self._drop_lock:
            self._unlogged[cause] += n
        self._log_drops()

    def _log_drops(self, force: bool = False) -> None:
        """One warning per ``log_every_s``: how many rows, and why (class names only)."""
        now = time.monotonic()
        with self._drop_lock:
            if not self._unlogged or (not force and now - self._last_logged < self.log_every_s):
                return
            causes, self._unlogged = self._unlogged, Counter()
            self._last_logged = now
        log.warning(
            "prediction log: %d rows dropped (%s); total dropped %d",
            sum(causes.values()),
            ", ".join(f"{cause}: {n}" for cause, n in causes.most_common()),
            self.dropped,
        )

    def _take(self) -> list[dict]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < self.batch_rows:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[dict]) -> None:
        if self._engine is None:
            self._drop(len(batch), "store unavailable")
            return
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(self._table), batch)
        except Exception as exc:
            if len(batch) > 1 and not _is_outage(exc):
                half = len(batch) // 2  # the database refused something in it: find what
                self._write(batch[:half])
                self._write(batch[half:])
                return
            self._drop(len(batch), type(exc).__name__)
        else:
            self._count("written", len(batch))

    def add_feedback(self, row: dict) -> int:
        """Store one feedback row now (masked like the predictions); its id. Raises on failure."""
        if self._engine is None:
            raise RuntimeError("prediction log unavailable")
        if self.mask is not None and isinstance(row.get("text"), str):
            row = {**row, "text": self.mask(row["text"])}
        with self._engine.begin() as conn:
            return int(conn.execute(sa.insert(self._feedback), [row][0]).inserted_primary_key[0])

    def enforce_retention(self) -> int:
        """Delete rows past ``retention_days`` / beyond the newest ``retention_rows``; how many."""
        if self._engine is None or (self.retention_days is None and self.retention_rows is None):
            return 0
        table, deleted = self._table, 0
        try:
            with self._engine.begin() as conn:
                if self.retention_days is not None:
                    cutoff = datetime.now(timezone.utc) - timedelta(days=self.retention_days)
                    deleted += conn.execute(
                        sa.delete(table).where(table.c.created_at < cutoff)
                    ).rowcount
                    fb = self._feedback  # feedback holds texts too: the same age limit
                    conn.execute(sa.delete(fb).where(fb.c.created_at < cutoff))
                if self.retention_rows is not None:
                    keep_from = conn.execute(
                        sa.select(table.c.id)
                        .order_by(table.c.id.desc())
                        .offset(self.retention_rows)
                        .limit(1)
                    ).scalar()
                    if keep_from is not None:
                        deleted += conn.execute(
                            sa.delete(table).where(table.c.id <= keep_from)
                        ).rowcount
        except Exception as exc:  # the next round tries again; never the statement's text
            log.warning("prediction log: retention failed (%s)", type(exc).__name__)
            return 0
        if deleted:
            self._count("expired", deleted)
        return deleted

    def _loop(self) -> None:
        next_retention = 0.0
        while not (self._stop.is_set() and self._queue.empty()):
            if time.monotonic() >= next_retention:
                self.enforce_retention()
                next_retention = time.monotonic() + self.retention_every_s
            batch = self._take()
            if batch:
                if self.mask is not None:  # here, off the request path, before any storage
                    for row in batch:
                        if isinstance(row.get("text"), str):
                            row["text"] = self.mask(row["text"])
                self._write(batch)
                for _ in batch:
                    self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written or dropped; True if that happened in time."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks
