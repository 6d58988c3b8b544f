"""The demo shop under uvicorn on a free loopback port, collected from by both sources:
its API pages, its GBK product pages, its robots.txt."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from _helpers import free_port
from lmforge.collect.api import run_api_pass
from lmforge.collect.config import ApiSource, CrawlSource, HttpConfig
from lmforge.collect.crawl import run_crawl_pass
from lmforge.collect.demo_shop import create_app, shop_reviews
from lmforge.collect.store import Store, frontier, records
from lmforge.run.recipe import DEFAULT_RECIPE, load_recipe

FAST = HttpConfig(delay=0, backoff=0.01, retries=1)


@pytest.fixture(scope="module")
def shop():
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the demo shop did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_api_pages_hold_the_builtin_reviews(shop, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    source = ApiSource(
        name="api",
        url=f"{shop}/api/reviews",
        params={"per_page": 50},
        fields={"id": "id", "text": "text", "label": "label", "time": "time"},
        max_pages=3,
        http=FAST,
    )
    result = run_api_pass(source, store)
    assert result.new == 150 and result.pages == 3
    with store.engine.connect() as conn:
        rows = conn.execute(select(records.c.key, records.c.text, records.c.label)).all()
    expected = shop_reviews()[:150]
    assert [(int(k), t, lab) for k, t, lab in rows] == [
        (r["id"], r["text"], r["label"]) for r in expected
    ]
    assert store.state("api")["next"] == 4  # the next pass goes on at page 4
    link = httpx.get(f"{shop}/api/reviews?cursor=10&per_page=5").headers["link"]
    assert link == '</api/reviews?cursor=15&per_page=5>; rel="next"'


def test_crawl_reads_gbk_pages_and_obeys_robots(shop, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    source = CrawlSource(
        name="web",
        seeds=[f"{shop}/"],
        max_depth=3,
        max_pages=30,
        allow=[r"/$", r"/products\?page=1$", r"/product/[1-6]\.html", r"/cart/"],
        http=FAST,
    )
    result = run_crawl_pass(source, store)
    assert result.errors == 0
    with store.engine.connect() as conn:
        pages = dict(conn.execute(select(records.c.key, records.c.text)).all())
        status = dict(conn.execute(select(frontier.c.url, frontier.c.status)).all())
    assert status[f"{shop}/cart/"] == "skipped"  # robots.txt disallows it
    reviews = shop_reviews()
    for number in (2, 4, 5):  # UTF-8; GBK by header; GBK by <meta> only
        text = pages[f"{shop}/product/{number}.html"]
        first = reviews[(number - 1) * 20]["text"]
        assert first[:20] in text and "\ufffd" not in text


def test_packaged_shop_recipe_is_valid():
    recipe = load_recipe(DEFAULT_RECIPE.parent / "shop.yaml")
    assert [s.type for s in recipe.collect.sources] == ["api", "crawl"]
    assert recipe.corpus.sources[0].type == "sql"
    assert recipe.classify.data.startswith("sql:sqlite:///runs/shop/")
