"""A polite crawl pass into the store.

From the seeds, breadth first, within the seeds' hosts (``scope: host``) or their
registered domains and subdomains (``scope: domain``), up to ``max_depth`` links away and
``max_pages`` fetched pages a pass. Per URL: robots.txt (protego; a robots.txt that
answers 4xx allows everything, one that cannot be read disallows everything, as RFC 9309
says), the host's delay = max(configured, Crawl-delay, Retry-After) (in
:class:`~lmforge.collect.http.PoliteClient`), HTML only, streamed and aborted over
``max_bytes``; encoding by BOM, then the Content-Type header, then ``<meta charset>``,
then detection (GBK/GB2312 read as GB18030); main text by trafilatura; links and
``<link rel=canonical>`` by lxml; ``<meta name=robots>`` noindex/nofollow obeyed.

URLs are normalised (:func:`canonical_url`) before they are queued, so one page is
fetched once however it is linked. The frontier lives in the store: each page's row, its
new links and its frontier status are committed together, so a crawl killed at any point
continues where it stopped. A pass that found no pending URL starts a new pass over
every known URL (unchanged pages add no row).
"""

from __future__ import annotations

import codecs
import re
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from lmforge.collect.api import PassResult
from lmforge.collect.config import CrawlSource
from lmforge.collect.http import FetchError, PoliteClient
from lmforge.collect.store import DONE, ERROR, SKIPPED, Item, Store
from lmforge.corpus.readers.web import decode_html, extract_main_text

HTML_TYPES = ("text/html", "application/xhtml+xml")
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|yclid|mc_eid|spm)$", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
ROBOTS_MAX_BYTES = 500_000  # Google reads the first 500 KiB of a robots.txt


def canonical_url(url: str, base: str | None = None) -> str | None:
    """The one spelling of a URL: joined to ``base``, http(s) only, no fragment, dot
    segments resolved, host lower-case without the default port, tracking parameters
    (utm_*, fbclid, ...) dropped, the query sorted. None for other schemes."""
    url = url.strip()
    if base is not None:
        url = urljoin(base, url)
    url = urldefrag(url)[0]
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    port = parts.port if parts.port not in (None, 80 if scheme == "http" else 443) else None
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    path = urlsplit(urljoin(f"{scheme}://{netloc}/", parts.path or "/")).path
    query = urlencode(
        sorted(
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not _TRACKING.match(k)
        )
    )
    return urlunsplit((scheme, netloc, path, query, ""))


def _domain(host: str) -> str:
    """The registered domain, approximately: the last two labels (three for 'x.com.cn'
    style names, the last label two letters and the one before it short); IPs as they are."""
    labels = host.split(".")
    if host.replace(".", "").isdigit() or len(labels) <= 2:
        return host
    if len(labels[-1]) == 2 and len(labels[-2]) <= 3:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def in_scope(url: str, seeds: list[str], scope: str) -> bool:
    netloc = urlsplit(url).netloc
    host = urlsplit(url).hostname or ""
    for seed in seeds:
        if scope == "host" and urlsplit(seed).netloc == netloc:
            return True
        if scope == "domain":
            domain = _domain(urlsplit(seed).hostname or "")
            if host == domain or host.endswith("." + domain):
                return True
    return False


def decode_page(content: bytes, headers: httpx.Headers) -> tuple[str, str] | None:
    """(html, encoding): BOM, then the header's charset, then <meta>, then detection."""
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return content.decode(codec, errors="replace"), codec
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", headers.get("content-type", ""), re.I)
    return decode_html(content, match.group(1) if match else None)


@dataclass
class PageInfo:
    links: list[str] = field(default_factory=list)
    canonical: str | None = None
    noindex: bool = False
    nofollow: bool = False


def page_info(html: str, url: str) -> PageInfo:
    """Links (canonical, in page order, repeats dropped), <link rel=canonical>, and the
    page's <meta name=robots> noindex / nofollow."""
    import lxml.html

    info = PageInfo()
    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return info
    base = tree.find(".//base[@href]")
    base_url = urljoin(url, base.get("href")) if base is not None else url
    for meta in tree.iterfind(".//meta[@name]"):
        if meta.get("name", "").lower() in ("robots", "lmforge"):
            content = meta.get("content", "").lower()
            info.noindex |= "noindex" in content or "none" in content
            info.nofollow |= "nofollow" in content or "none" in content
    for link in tree.iterfind(".//link[@rel]"):
        if "canonical" in link.get("rel", "").lower().split() and link.get("href"):
            info.canonical = canonical_url(link.get("href"), base_url)
    seen = set()
    for anchor in tree.iterfind(".//a[@href]"):
        if "nofollow" in anchor.get("rel", "").lower().split():
            continue
        target = canonical_url(anchor.get("href"), base_url)
        if target and target not in seen:
            seen.add(target)
            info.links.append(target)
    return info


class Robots:
    """robots.txt per scheme+host, fetched once per pass through the polite client."""

    def __init__(self, client: PoliteClient) -> None:
        self.client = client
        self._rules: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _parser(self, url: str):
        from protego import Protego

        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:
            if origin in self._rules:
                return self._rules[origin]
            try:
                got = self.client.get(f"{origin}/robots.txt", max_bytes=ROBOTS_MAX_BYTES)
                if got.status >= 500:
                    rules = Protego.parse("User-agent: *\nDisallow: /\n")
                elif got.status >= 400:
                    rules = Protego.parse("")
                else:
                    rules = Protego.parse(got.content.decode("utf-8", errors="replace"))
            except FetchError as exc:
                rules = Protego.parse("User-agent: *\nDisallow: /\n")
                if exc.reason in ("too_large",):
                    rules = Protego.parse("")
            delay = rules.crawl_delay(self.client.config.user_agent)
            if delay:
                self.client.set_delay(url, float(delay))
            self._rules[origin] = rules
            return rules

    def allowed(self, url: str) -> bool:
        return self._parser(url).can_fetch(url, self.client.config.user_agent)


@dataclass
class Outcome:
    status: str
    http_status: int | None = None
    error: str | None = None
    items: list[Item] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    fetched: bool = True


def _is_html(resp: httpx.Response) -> str | None:
    kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if resp.status_code < 400 and kind and kind not in HTML_TYPES:
        return "not_html"
    return None


class Crawler:
    def __init__(self, source: CrawlSource, store: Store, client: PoliteClient) -> None:
        self.source = source
        self.store = store
        self.client = client
        self.robots = Robots(client)
        self.seeds = [u for u in (canonical_url(s) for s in source.seeds) if u]
        self.allow = [re.compile(p) for p in source.allow]
        self.deny = [re.compile(p) for p in source.deny]

    def wanted(self, url: str) -> bool:
        if not in_scope(url, self.seeds, self.source.scope):
            return False
        if self.allow and not any(p.search(url) for p in self.allow):
            return False
        return not any(p.search(url) for p in self.deny)

    def visit(self, url: str, depth: int) -> Outcome:
        """Fetch and read one URL; never raises for what a page does."""
        if not self.robots.allowed(url):
            return Outcome(SKIPPED, error="disallowed by robots.txt", fetched=False)
        try:
            got = self.client.get(
                url, max_bytes=self.source.max_bytes, check=_is_html, follow=self._follow
            )
        except FetchError as exc:
            if exc.reason == "not_html":
                return Outcome(SKIPPED, exc.status, "not HTML (Content-Type)")
            if exc.reason == "redirect_blocked":
                return Outcome(SKIPPED, exc.status, str(exc))
            return self._error(url, str(exc), exc.status)
        if got.status >= 400:
            return self._error(url, f"HTTP {got.status}", got.status)
        final = canonical_url(got.url) or url
        decoded = decode_page(got.content, got.headers)
        if decoded is None:
            return self._error(url, "binary: the payload is not text", got.status)
        html, encoding = decoded
        info = page_info(html, final)
        links = []
        if depth < self.source.max_depth and not info.nofollow:
            links = [link for link in info.links if self.wanted(link)]
        items = []
        if not info.noindex:
            extracted = extract_main_text(html, final)
            if extracted is not None:
                key = info.canonical if info.canonical and self.wanted(info.canonical) else final
                items.append(Item(extracted[0], key=key, url=final, http_status=got.status))
        return Outcome(DONE, got.status, None, items, links)

    def _follow(self, target: str) -> str | None:
        """Why a redirect must not be followed to ``target`` (None: follow it)."""
        canonical = canonical_url(target)
        if canonical is None or not self.wanted(canonical):
            return "out of scope"
        if not self.robots.allowed(canonical):
            return "disallowed by robots.txt"
        return None

    def _error(self, url: str, message: str, status: int | None) -> Outcome:
        error = f"{url}: {message}"
        item = Item("", key=url, url=url, http_status=status, error=error)
        return Outcome(ERROR, status, error, [item])

    def run(self, on_page=None) -> PassResult:
        source, store = self.source, self.store
        result = PassResult(source.name)
        if not store.pending(source.name, 1):
            store.reopen_frontier(source.name)  # the last pass finished: start a new one
        store.add_urls(source.name, [(seed, 0) for seed in self.seeds])  # new seeds join
        # Twice the requests allowed in flight: one page is decoded and extracted while the
        # next is fetched (the client's per-host semaphore still caps requests per host).
        hosts = max(1, len({urlsplit(s).netloc for s in self.seeds}))
        workers = 2 * source.http.concurrency * hosts
        in_flight: dict[Future, tuple[str, int]] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crawl") as pool:
            while True:
                room = source.max_pages - result.pages - len(in_flight)
                if room > 0 and len(in_flight) < workers:
                    busy = {url for url, _ in in_flight.values()}
                    for url, depth in store.pending(source.name, workers + len(in_flight)):
                        if url in busy or len(in_flight) >= workers or room <= 0:
                            continue
                        in_flight[pool.submit(self.visit, url, depth)] = (url, depth)
                        room -= 1
                if not in_flight:
                    result.finished = not store.pending(source.name, 1)
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    url, depth = in_flight.pop(future)
                    outcome = future.result()
                    result.pages += outcome.fetched
                    result.items += sum(1 for item in outcome.items if not item.error)
                    result.errors += outcome.status == ERROR
                    if outcome.status == ERROR:
                        result.messages.append(outcome.error)
                    result.new += store.finish_url(
                        source.name,
                        url,
                        outcome.status,
                        http_status=outcome.http_status,
                        error=outcome.error,
                        items=outcome.items,
                        links=[(link, depth + 1) for link in outcome.links],
                    )
                    if on_page is not None:
                        on_page(result)
        return result


def run_crawl_pass(
    source: CrawlSource, store: Store, client: PoliteClient | None = None, on_page=None
) -> PassResult:
    """One crawl pass (continuing an interrupted one); see the module docstring."""
    own = client is None
    client = client or PoliteClient(source.http)
    try:
        return Crawler(source, store, client).run(on_page)
    finally:
        if own:
            client.close()
