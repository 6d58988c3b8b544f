"""The store on SQLite and on a real MariaDB: idempotent upserts, the cursor committed with
the rows, the frontier."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lmforge.collect.store import DONE, ERROR, PENDING, Item, Store, records
from lmforge.errors import LmforgeError


def _rows(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        query = select(records.c.source, records.c.key, records.c.text, records.c.label)
        return sorted(tuple(r) for r in conn.execute(query.order_by(records.c.id)))


def test_upsert_is_idempotent_and_keeps_changed_items(store_url):
    store = Store(store_url)
    items = [Item("很好用的手机", key="1", label="pos"), Item("质量太差了", key="2", label="neg")]
    assert store.save_page("api", items, {"next": 2}) == 2
    assert store.save_page("api", items, {"next": 3}) == 0  # the same page again: no-op
    # an edited review (same id, new text) is a new row; an item without id is keyed by content
    assert (
        store.save_page("api", [Item("其实还行", key="2", label="neg"), Item("无编号")], None) == 2
    )
    assert store.save_page("api", [Item("无编号")], None) == 0
    # the same id in another source is another item
    assert store.save_page("other", [Item("很好用的手机", key="1")], None) == 1
    assert len(_rows(store)) == 5
    assert store.state("api") is None  # None deletes the cursor
    assert store.counts("api") == {"rows": 4}


def test_cursor_and_rows_share_one_transaction(store_url):
    store = Store(store_url)
    store.save_page("api", [Item("第一页", key="a")], {"next": 2, "last": 1})
    assert store.state("api") == {"next": 2, "last": 1}

    class Boom(Exception):
        pass

    # a failure inside the transaction leaves neither the rows nor the cursor
    with pytest.raises(Boom), store.engine.begin() as conn:
        store._write_items(conn, "api", [Item("第二页", key="b")])
        store._set_state(conn, "api", {"next": 3, "last": 2})
        raise Boom
    assert store.state("api") == {"next": 2, "last": 1}
    assert [r[1] for r in _rows(store)] == ["a"]


def test_long_text_and_error_rows(store_url):
    store = Store(store_url)
    long_text = "长" * 70_000  # over MySQL's 64 KB TEXT
    error = Item("", key="http://x/p?page=3", url="http://x/p?page=3", http_status=200, error="bad")
    assert store.save_page("api", [Item(long_text, key="l"), error], None) == 2
    assert store.counts() == {"rows": 1, "error_rows": 1}
    with store.engine.connect() as conn:
        stored = conn.execute(select(records.c.text).where(records.c.key == "l")).scalar_one()
    assert stored == long_text


def test_frontier_dedups_and_finishes_with_items(store_url):
    store = Store(store_url)
    store.add_urls("crawl", [("http://h/a", 0), ("http://h/b", 0), ("http://h/a", 0)])
    assert store.pending("crawl", 10) == [("http://h/a", 0), ("http://h/b", 0)]
    links = [("http://h/b", 1), ("http://h/c", 1)]
    page = Item("页面正文", key="http://h/a", url="http://h/a", http_status=200)
    assert store.finish_url("crawl", "http://h/a", DONE, http_status=200, items=[page], links=links)
    store.finish_url("crawl", "http://h/b", ERROR, http_status=503, error="HTTP 503")
    assert store.pending("crawl", 10) == [("http://h/c", 1)]
    assert store.counts("crawl") == {"rows": 1, "urls_done": 1, "urls_error": 1, "urls_pending": 1}
    assert store.reopen_frontier("crawl") == 2
    assert [u for u, _ in store.pending("crawl", 10)] == ["http://h/a", "http://h/b", "http://h/c"]
    assert PENDING == "pending"


def test_bad_store_url_is_one_line_error(tmp_path):
    with pytest.raises(LmforgeError, match="not a SQLAlchemy database URL"):
        Store("no-such-scheme")
    with pytest.raises(LmforgeError, match="no driver"):
        Store("mysql+nosuchdriver://u@127.0.0.1/db")


def test_password_from_the_environment(monkeypatch, tmp_path):
    from sqlalchemy.engine import make_url

    from lmforge.collect.store import expand_env

    url = "mysql+pymysql://shop:${SHOP_DB_PASSWORD}@db.example:3306/reviews"
    with pytest.raises(LmforgeError, match="SHOP_DB_PASSWORD is not set"):
        expand_env(url)
    monkeypatch.setenv("SHOP_DB_PASSWORD", "p@ss/w:rd")
    assert make_url(expand_env(url)).password == "p@ss/w:rd"
    monkeypatch.setenv("RUN_DIR", "run")
    assert expand_env("sqlite:///${RUN_DIR}.sqlite") == "sqlite:///run.sqlite"
