"""One ASGI middleware around every HTTP request: body-size limit, request id, and the request
count / latency / in-flight metrics (by route template, method and status)."""

from __future__ import annotations

import itertools
import os
import time

from fastapi import HTTPException
from starlette.responses import JSONResponse

from lmforge.serve.metrics import ServeMetrics

UNMATCHED = "<unmatched>"


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body is larger than the limit of {limit:,} bytes")


class ServeMiddleware:
    def __init__(self, app, metrics: ServeMetrics, max_body_bytes: int):
        self.app = app
        self.metrics = metrics
        self.limit = max_body_bytes
        # request ids: a random per-process prefix and a counter (unique per server, and a
        # tenth of the cost of a uuid4 per request)
        self._ids = map(f"{os.urandom(6).hex()}-{{:x}}".format, itertools.count(1))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = next(self._ids)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False

        async def send_wrapper(message):
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        received = 0

        async def receive_wrapper():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _too_large(self.limit)
            return message

        self.metrics.inflight.inc()
        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                error = (
                    _too_large(self.limit)
                    if length.isdigit()
                    else HTTPException(400, "bad Content-Length")
                )
                await JSONResponse({"detail": error.detail}, error.status_code)(
                    scope, receive, send_wrapper
                )
                return
            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            except HTTPException as exc:  # the body limit hit outside a route's own handling
                if started:
                    raise
                await JSONResponse({"detail": exc.detail}, exc.status_code)(
                    scope, receive, send_wrapper
                )
        finally:
            self.metrics.inflight.dec()
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe_request(
                route, scope["method"], status, time.perf_counter() - start
            )
