"""Collect benchmark: crawl pages/s against the local demo shop, and store rows/s.

Run:  python benchmarks/collect_bench.py [--pages 200] [--concurrency 4] [--skip-scrapy]
                                         [--skip-mariadb]

Pages/s: the demo shop (``lmforge demo-shop``, its own process, 127.0.0.1) serves N
product pages (20 reviews each, every fourth in GBK). Politeness delays are OFF here (for
the benchmark only: ``delay: 0``; robots.txt is still read). Compared, in one run:

- ``httpx loop``: a plain sequential ``httpx.Client.get`` over the N URLs (fetch only);
- ``httpx loop + trafilatura``: the same, plus decoding and main-text extraction: the
  per-page work our crawler does, without the store, frontier, robots or link parsing;
- ``lmforge crawl``: a crawl pass (max_depth 0, the N URLs as seeds) into a fresh SQLite
  store, at ``concurrency`` 1 and ``--concurrency``;
- ``scrapy`` (if installed; fetch only, its defaults: 16 concurrent requests, robots off).

Rows/s: the 35,123 built-in reviews stored in pages of 500 (one transaction each, as an
API pass does) into SQLite and into MariaDB (started on a loopback port when ``mariadbd``
is installed), then the same rows again (the idempotent no-op path of a re-read page).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from lmforge.collect.config import CrawlSource, HttpConfig
from lmforge.collect.crawl import decode_page, run_crawl_pass
from lmforge.collect.demo_shop import shop_reviews
from lmforge.collect.store import Item, Store
from lmforge.corpus.readers.web import extract_main_text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.args}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def start_shop() -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = f"from lmforge.collect.demo_shop import serve; serve('127.0.0.1', {port})"
    proc = subprocess.Popen([sys.executable, "-c", code])
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/robots.txt", proc)
    return proc, base


def bench_httpx(urls: list[str], extract: bool) -> float:
    t0 = time.perf_counter()
    with httpx.Client() as client:
        for url in urls:
            resp = client.get(url)
            if extract:
                html, _ = decode_page(resp.content, resp.headers)
                extract_main_text(html, url)
    return len(urls) / (time.perf_counter() - t0)


def bench_ours(urls: list[str], concurrency: int, folder: Path) -> float:
    store = Store(f"sqlite:///{folder / f'crawl-{concurrency}.sqlite'}")
    source = CrawlSource(
        name="bench",
        seeds=urls,
        max_depth=0,
        max_pages=len(urls),
        http=HttpConfig(delay=0, concurrency=concurrency),
    )
    t0 = time.perf_counter()
    result = run_crawl_pass(source, store)
    elapsed = time.perf_counter() - t0
    assert result.pages == len(urls) and result.new == len(urls), result.to_dict()
    store.close()
    return len(urls) / elapsed


SCRAPY_SCRIPT = """
import json, sys, time
import scrapy
from scrapy.crawler import CrawlerProcess
urls = json.loads(sys.argv[1])
got = []
class Shop(scrapy.Spider):
    name = "shop"
    start_urls = urls
    def parse(self, response):
        got.append(len(response.body))
process = CrawlerProcess({"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": False,
                          "TELNETCONSOLE_ENABLED": False})
process.crawl(Shop)
t0 = time.perf_counter()
process.start()
print(json.dumps({"pages": len(got), "seconds": time.perf_counter() - t0}))
"""


def bench_scrapy(urls: list[str]) -> float | None:
    try:
        import scrapy  # noqa: F401
    except ImportError:
        return None
    out = subprocess.run(
        [sys.executable, "-c", SCRAPY_SCRIPT, json.dumps(urls)], capture_output=True, text=True
    )
    if out.returncode != 0:
        print("scrapy failed:", out.stderr[-500:])
        return None
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["pages"] == len(urls), data
    return data["pages"] / data["seconds"]


def start_mariadb(folder: Path) -> tuple[subprocess.Popen, str] | None:
    binary, installer = shutil.which("mariadbd") or "/usr/sbin/mariadbd", "mariadb-install-db"
    if not Path(binary).exists() or shutil.which(installer) is None:
        return None
    datadir = folder / "mariadb"
    subprocess.run(
        [installer, "--no-defaults", f"--datadir={datadir}", "--user=root", "--skip-test-db"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--no-defaults", f"--datadir={datadir}", f"--socket={folder / 'sock'}"]
        + [f"--port={port}", "--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables"]
        + ["--skip-log-bin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import pymysql

    for _ in range(150):
        try:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="root")
            conn.cursor().execute("CREATE DATABASE bench CHARACTER SET utf8mb4")
            conn.close()
            return proc, f"mysql+pymysql://root@127.0.0.1:{port}/bench?charset=utf8mb4"
        except pymysql.err.OperationalError:
            time.sleep(0.2)
    proc.kill()
    return None


def bench_rows(url: str) -> tuple[float, float]:
    reviews = shop_reviews()
    items = [Item(r["text"], key=str(r["id"]), label=r["label"], time=r["time"]) for r in reviews]
    store = Store(url)
    rates = []
    for _ in range(2):  # first: all new; second: all already there
        t0 = time.perf_counter()
        for start in range(0, len(items), 500):
            store.save_page("bench", items[start : start + 500], {"next": start + 500})
        rates.append(len(items) / (time.perf_counter() - t0))
    assert store.counts("bench") == {"rows": len(items)}
    store.close()
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--skip-scrapy", action="store_true")
    parser.add_argument("--skip-mariadb", action="store_true")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="collect-bench-"))
    shop, base = start_shop()
    try:
        urls = [f"{base}/product/{n}.html" for n in range(1, args.pages + 1)]
        bench_httpx(urls[:20], extract=True)  # warm up: imports, connections, server caches
        rows = [("httpx loop (fetch only)", bench_httpx(urls, extract=False))]
        rows.append(("httpx loop + trafilatura", bench_httpx(urls, extract=True)))
        rows.append(("lmforge crawl, concurrency 1", bench_ours(urls, 1, folder)))
        rows.append(
            (
                f"lmforge crawl, concurrency {args.concurrency}",
                bench_ours(urls, args.concurrency, folder),
            )
        )
        if not args.skip_scrapy:
            rate = bench_scrapy(urls)
            rows.append(("scrapy (fetch only)", rate) if rate else ("scrapy", None))
    finally:
        shop.terminate()
        shop.wait()
    base_rate = rows[1][1]
    print(f"\npages/s, {args.pages} demo-shop product pages, politeness delays off")
    for name, rate in rows:
        if rate is None:
            print(f"  {name:36s}  not installed (pip install scrapy), skipped")
        else:
            print(f"  {name:36s} {rate:8.1f}   x{rate / base_rate:.2f} vs httpx+trafilatura")

    print("\nrows/s into the store (35,123 reviews, 500 a transaction)")
    targets = [("SQLite", f"sqlite:///{folder / 'rows.sqlite'}")]
    mariadb = None if args.skip_mariadb else start_mariadb(folder)
    if mariadb is not None:
        targets.append(("MariaDB", mariadb[1]))
    try:
        for name, url in targets:
            new, again = bench_rows(url)
            print(f"  {name:8s} new rows {new:9,.0f}/s   re-stored (no-op) {again:9,.0f}/s")
        if mariadb is None and not args.skip_mariadb:
            print("  MariaDB  mariadbd not installed, skipped")
    finally:
        if mariadb is not None:
            mariadb[0].terminate()
            mariadb[0].wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
