"""The micro-batcher: concurrent requests share model calls, each gets exactly its own answers."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from lmforge.serve.batcher import BatcherClosed, MicroBatcher


class RecordingModel:
    """predict(texts) -> one answer per text that names the text; records every call."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[list[str]] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        return [f"answer:{t}" for t in texts]


def test_concurrent_requests_get_their_own_answers_in_shared_batches():
    model = RecordingModel(delay=0.002)
    rng = random.Random(0)
    requests = [[f"r{i}-t{j}" for j in range(rng.randint(1, 5))] for i in range(300)]

    async def main():
        batcher = MicroBatcher(model, max_batch=16, max_wait_ms=2)
        await batcher.start()

        async def one(texts):
            await asyncio.sleep(rng.random() * 0.02)
            return await batcher.submit(texts)

        answers = await asyncio.gather(*(one(t) for t in requests))
        await batcher.stop()
        return answers

    answers = asyncio.run(main())
    for texts, got in zip(requests, answers, strict=True):
        assert got == [f"answer:{t}" for t in texts]
    sizes = [len(c) for c in model.calls]
    assert sum(sizes) == sum(len(t) for t in requests)  # every text ran exactly once
    assert max(sizes) <= 16
    assert len(model.calls) < len(requests) / 2  # requests were gathered, not run one by one
    assert all(name.startswith("lmforge-predict") for name in model.threads)  # off the loop


def test_a_lone_request_waits_at_most_max_wait_and_a_big_one_runs_alone():
    model = RecordingModel()

    async def main():
        batcher = MicroBatcher(model, max_batch=4, max_wait_ms=50)
        await batcher.start()
        start = time.perf_counter()
        lone = await batcher.submit(["a"])
        waited = time.perf_counter() - start
        big = await batcher.submit([str(i) for i in range(10)])
        await batcher.stop()
        return lone, waited, big

    lone, waited, big = asyncio.run(main())
    assert lone == ["answer:a"] and 0.04 < waited < 2
    assert big == [f"answer:{i}" for i in range(10)]
    assert [len(c) for c in model.calls] == [1, 10]


def test_abandoned_requests_are_skipped_and_errors_reach_only_their_caller():
    gate = threading.Event()

    def slow(texts):
        gate.wait(5)
        if "boom" in texts:
            raise ValueError("model failed")
        return texts

    async def main():
        batcher = MicroBatcher(slow, max_batch=8, max_wait_ms=0)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(["first"]))  # occupies the model
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit(["gave-up"]), 0.05)
        failing = [asyncio.create_task(batcher.submit([x])) for x in ("boom", "other")]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *failing, return_exceptions=True)
        await batcher.stop()
        return results

    first, boom, other = asyncio.run(main())
    assert first == ["first"]
    assert isinstance(boom, ValueError) and other == ["other"]  # same batch, own answer


def test_stop_finishes_queued_requests_then_refuses_new_ones():
    model = RecordingModel(delay=0.01)

    async def main():
        batcher = MicroBatcher(model, max_batch=2, max_wait_ms=1)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.submit([f"t{i}"])) for i in range(10)]
        await asyncio.sleep(0)
        await batcher.stop()
        done = [t.result() for t in tasks]
        with pytest.raises(BatcherClosed):
            await batcher.submit(["late"])
        return done

    assert asyncio.run(main()) == [[f"answer:t{i}"] for i in range(10)]


def test_one_failing_input_fails_only_its_own_request():
    """An input that breaks the model used to fail every request of its micro-batch."""
    model = RecordingModel()

    def fragile(texts):
        if any("\x00" in t for t in texts):
            raise ValueError("the model cannot take this input")
        return model(texts)

    requests = [[f"r{i}-a", f"r{i}-b"] for i in range(8)]
    requests[5] = ["fine", "bad\x00input"]
    gate = threading.Event()

    async def main():
        batcher = MicroBatcher(lambda t: gate.wait(5) and fragile(t), max_batch=64)
        await batcher.start()
        blocker = asyncio.create_task(batcher.submit(["occupies the model"]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(batcher.submit(r)) for r in requests]  # one batch
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
        await batcher.stop()
        return results[1:]

    results = asyncio.run(main())
    assert isinstance(results[5], ValueError)
    for i, (texts, got) in enumerate(zip(requests, results, strict=True)):
        if i != 5:
            assert got == [f"answer:{t}" for t in texts]
    # split in halves, not one by one: [0-3] ok, [4-7] fails, [4,5] fails, [4] ok, [5] fails, [6,7] ok
    assert [len(c) for c in model.calls[1:]] == [8, 2, 4]
