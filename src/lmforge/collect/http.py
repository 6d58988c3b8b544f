"""One polite HTTP client for every collect source (httpx underneath).

- a User-Agent naming lmforge on every request;
- per host: at most ``concurrency`` requests in flight, and request starts at least
  ``delay`` seconds apart (the crawler raises a host's delay to its robots Crawl-delay);
- retries on 429, 5xx, timeouts and connection errors, waiting Retry-After when the server
  sends it (seconds or an HTTP date, capped), else an exponential backoff; a Retry-After
  also holds back every other request to that host;
- optional streaming with a byte cap, aborted as soon as the cap or a bad content type
  shows (the body of an oversized or non-HTML page is never read whole).

The retry loop is written here rather than taken from tenacity/httpx transports: neither
honours Retry-After per host across threads, which is the point of it.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from lmforge.collect.config import HttpConfig

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10


class FetchError(Exception):
    """A request that failed for good: ``reason`` is a short tag (http_error, timeout,
    too_large, not_html, redirect_loop, redirect_blocked, connection), ``status`` the last HTTP status."""

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass
class Fetched:
    url: str  # after redirects
    status: int
    headers: httpx.Headers
    content: bytes
    attempts: int = 1


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP date) in seconds, capped; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return min(max(0.0, when.timestamp() - time.time()), cap)


@dataclass
class _Host:
    slots: threading.Semaphore
    next_start: float = 0.0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class PoliteClient:
    """Thread-safe; one per source and pass. ``sleep`` is injectable for tests."""

    def __init__(self, config: HttpConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.sleep = sleep
        self.client = httpx.Client(
            headers={"User-Agent": config.user_agent},
            timeout=config.timeout,
            follow_redirects=False,  # followed in get(), each hop polite and checked
            limits=httpx.Limits(max_connections=max(10, config.concurrency * 4)),
        )
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def host(self, url: str) -> _Host:
        netloc = urlsplit(url).netloc.lower()
        with self._lock:
            if netloc not in self._hosts:
                self._hosts[netloc] = _Host(
                    threading.Semaphore(self.config.concurrency), delay=self.config.delay
                )
            return self._hosts[netloc]

    def set_delay(self, url: str, seconds: float) -> None:
        """Raise a host's delay between requests (never below the configured one)."""
        host = self.host(url)
        with host.lock:
            host.delay = max(self.config.delay, seconds)

    def _hold(self, host: _Host, seconds: float) -> None:
        with host.lock:
            host.next_start = max(host.next_start, time.monotonic() + seconds)

    def _wait_turn(self, host: _Host) -> None:
        while True:
            with host.lock:
                wait = host.next_start - time.monotonic()
                if wait <= 0:
                    host.next_start = time.monotonic() + host.delay
                    return
            self.sleep(wait)

    def get(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        params: dict | None = None,
        max_bytes: int | None = None,
        check: Callable[[httpx.Response], str | None] | None = None,
        follow: Callable[[str], str | None] | None = None,
    ) -> Fetched:
        """GET with politeness and retries. ``check(response)`` may return a reason to abort
        before the body is read (e.g. 'not_html'); a body over ``max_bytes`` aborts as
        'too_large'. Redirects are followed hop by hop (each hop a polite request, at most
        ``MAX_REDIRECTS``); ``follow(target)`` may return a reason not to go there
        (robots.txt, scope), raised as 'redirect_blocked'; a URL seen twice is a
        'redirect_loop'. Raises FetchError when the request fails for good."""
        seen: set[str] = set()
        for _ in range(MAX_REDIRECTS + 1):
            got = self._get_once(url, headers, params, max_bytes, check)
            location = got.headers.get("location")
            if got.status not in REDIRECTS or not location:
                return got
            seen.add(got.url)
            target = str(httpx.URL(got.url).join(location))
            if target in seen:
                raise FetchError("redirect_loop", f"redirect loop at {target}", got.status)
            reason = follow(target) if follow is not None else None
            if reason is not None:
                raise FetchError(
                    "redirect_blocked", f"redirected to {target}: {reason}", got.status
                )
            if urlsplit(target).netloc != urlsplit(got.url).netloc:
                headers = None  # credentials never follow a redirect to another host
            url, params = target, None
        raise FetchError("redirect_loop", f"over {MAX_REDIRECTS} redirects", got.status)

    def _get_once(
        self,
        url: str,
        headers: dict[str, str] | None,
        params: dict | None,
        max_bytes: int | None,
        check: Callable[[httpx.Response], str | None] | None,
    ) -> Fetched:
        host = self.host(url)
        config = self.config
        last: FetchError | None = None
        for attempt in range(config.retries + 1):
            with host.slots:
                self._wait_turn(host)
                self.requests += 1
                try:
                    with self.client.stream("GET", url, headers=headers, params=params) as resp:
                        if resp.status_code in RETRY_STATUS:
                            wait = retry_after_seconds(
                                resp.headers.get("retry-after"), config.max_retry_after
                            )
                            last = FetchError(
                                "http_error", f"HTTP {resp.status_code}", resp.status_code
                            )
                        elif resp.status_code in REDIRECTS:
                            return Fetched(str(resp.url), resp.status_code, resp.headers, b"")
                        else:
                            return self._read(resp, attempt + 1, max_bytes, check)
                except httpx.TimeoutException as exc:
                    wait, last = None, FetchError("timeout", f"timed out ({type(exc).__name__})")
                except httpx.TransportError as exc:
                    wait, last = None, FetchError("connection", f"{type(exc).__name__}: {exc}")
            if attempt == config.retries:
                break
            if wait is None:
                wait = config.backoff * 2**attempt * (1 + random.random() / 4)
            self._hold(host, wait)
        assert last is not None
        raise FetchError(last.reason, f"{last} after {config.retries + 1} attempts", last.status)

    @staticmethod
    def _read(
        resp: httpx.Response,
        attempts: int,
        max_bytes: int | None,
        check: Callable[[httpx.Response], str | None] | None,
    ) -> Fetched:
        if check is not None:
            reason = check(resp)
            if reason is not None:
                raise FetchError(reason, reason.replace("_", " "), resp.status_code)
        length = resp.headers.get("content-length", "")
        if max_bytes is not None and length.isdigit() and int(length) > max_bytes:
            raise FetchError(
                "too_large", f"Content-Length {length} over {max_bytes} bytes", resp.status_code
            )
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise FetchError("too_large", f"over {max_bytes} bytes", resp.status_code)
            chunks.append(chunk)
        return Fetched(str(resp.url), resp.status_code, resp.headers, b"".join(chunks), attempts)
