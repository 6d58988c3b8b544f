"""Micro-batching: many concurrent requests, one model call.

Each request hands its texts and a future to :meth:`MicroBatcher.submit`. One worker task takes
the oldest waiting request, then gathers more until the batch holds ``max_batch`` texts or the
oldest request has waited ``max_wait_ms``, runs the whole batch once through ``predict`` in a
dedicated thread (the event loop never blocks on the model; the :class:`~lmforge.predictor.
Predictor` sorts the texts by length so a batch pads little) and gives each request back its
own slice, in its own order.

When the model fails on a batch, the batch is split in halves (by request) and each half runs
again, down to single requests: only a request whose own texts make the model fail gets the
error; the others sharing its batch are answered (at the cost of ~2·log2(requests) more calls).

While the model runs, new requests queue up; the next batch takes them at once (their wait
already passed ``max_wait_ms``), so under load batches fill by themselves and at low load a
lone request waits at most ``max_wait_ms``. The default, 0, never waits: a request that finds
the model free runs at once (a fixed wait only added latency in the serving benchmark: 2 ms
cost a third of the throughput at one client and bought nothing at 128). A request never splits: one larger than
``max_batch`` runs alone. A request whose caller gave up (timeout, disconnect) is skipped, and
:meth:`stop` finishes every request already queued before it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    """What one model call did, for metrics."""

    texts: int
    requests: int
    queue_waits: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future
    enqueued: float


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


class MicroBatcher:
    """Gather concurrent ``submit`` calls into batches for one ``predict(texts) -> answers``."""

    def __init__(
        self,
        predict: Callable[[list[str]], Sequence[Any]],
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        self.predict = predict
        self.max_batch = int(max_batch)
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.on_batch = on_batch
        self._pending: deque[_Job] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lmforge-predict")
        self._task = asyncio.create_task(self._worker(), name="lmforge-batcher")

    async def stop(self) -> None:
        """Take no new requests, finish every queued one, then stop the worker."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        try:
            await self._task
        finally:
            self._task = None
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._closing

    @property
    def depth(self) -> int:
        """Texts waiting for a batch."""
        return sum(len(job.texts) for job in self._pending)

    # -- requests ----------------------------------------------------------------------------
    async def submit(self, texts: Sequence[str]) -> list[Any]:
        """This request's answers, in its order (after waiting for a batch and the model)."""
        if not self.running:
            raise BatcherClosed("the server is shutting down")
        texts = list(texts)
        if not texts:
            return []
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(texts, future, time.perf_counter()))
        self._wakeup.set()
        return await future

    # -- the worker --------------------------------------------------------------------------
    async def _wait_for_job(self, timeout: float | None) -> bool:
        """True once a job is pending; False if ``timeout`` passes (or closing) first."""
        while not self._pending:
            if self._closing:
                return False
            self._wakeup.clear()
            if timeout is None:
                await self._wakeup.wait()
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return bool(self._pending)
        return True

    def _pop_live(self) -> _Job | None:
        """The oldest job whose caller still waits (abandoned ones are dropped)."""
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                return job
        return None

    async def _gather(self) -> list[_Job]:
        if not await self._wait_for_job(None):
            return []
        first = self._pop_live()
        if first is None:
            return []
        jobs, size = [first], len(first.texts)
        deadline = first.enqueued + self.max_wait
        while size < self.max_batch:
            if not self._pending:
                left = deadline - time.perf_counter()
                if left <= 0 or self._closing or not await self._wait_for_job(left):
                    break
            nxt = self._pending[0]
            if nxt.future.done():
                self._pending.popleft()
                continue
            if size + len(nxt.texts) > self.max_batch:
                break  # stays first in line for the next batch
            jobs.append(self._pending.popleft())
            size += len(nxt.texts)
        return jobs

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._closing and not self._pending):
            jobs = await self._gather()
            if jobs:
                await self._run(loop, jobs)

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if not job.future.done()]  # callers gone since: skip
        if not jobs:
            return
        texts = [text for job in jobs for text in job.texts]
        start = time.perf_counter()
        stats = BatchStats(len(texts), len(jobs), [start - job.enqueued for job in jobs])
        try:
            answers = await loop.run_in_executor(self._executor, self.predict, texts)
            if len(answers) != len(texts):
                raise RuntimeError(f"predict returned {len(answers)} answers for {len(texts)}")
        except Exception as exc:
            if len(jobs) > 1:  # one request may have broken it: retry in halves to find which
                half = len(jobs) // 2
                await self._run(loop, jobs[:half])
                await self._run(loop, jobs[half:])
                return
            if not jobs[0].future.done():  # this request's own texts fail; the worker goes on
                jobs[0].future.set_exception(exc)
            return
        stats.seconds = time.perf_counter() - start
        offset = 0
        for job in jobs:
            part = list(answers[offset : offset + len(job.texts)])
            offset += len(job.texts)
            if not job.future.done():
                job.future.set_result(part)
        if self.on_batch is not None:
            try:
                self.on_batch(stats)
            except Exception:  # metrics must never stop the worker
                log.exception("on_batch callback failed")
