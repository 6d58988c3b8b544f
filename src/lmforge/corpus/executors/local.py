"""Run tasks on all local cores with a process pool, and a progress bar."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lmforge.lifetime import die_with_parent

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Cores this process may use (respects CPU affinity / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def progress_bar() -> Progress:
    """The bar every executor shows: one line per map, tasks done of all, elapsed time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
        disable=not sys.stderr.isatty() and os.environ.get("LMFORGE_PROGRESS") != "1",
    )


class LocalExecutor:
    """``workers`` processes (1 = run in this process, handy for debugging and tests).

    Uses the ``fork`` start method on Linux (workers inherit the already-imported
    modules, so starting costs milliseconds), ``spawn`` elsewhere.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()

    def describe(self) -> dict[str, Any]:
        return {"type": "local", "nodes": 1, "workers": self.workers}

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], description: str) -> list[R]:
        results: list[R | None] = [None] * len(tasks)
        with progress_bar() as progress:
            bar = progress.add_task(description, total=len(tasks))
            if self.workers == 1 or len(tasks) <= 1:
                for i, task in enumerate(tasks):
                    results[i] = fn(task)
                    progress.advance(bar)
                return results  # type: ignore[return-value]
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            context = multiprocessing.get_context(method)
            with ProcessPoolExecutor(
                min(self.workers, len(tasks)),
                mp_context=context,
                initializer=die_with_parent,  # no orphaned workers after a kill -9
                initargs=(os.getpid(),),
            ) as pool:
                pending: dict[Future, int] = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = pending.pop(future)
                        try:
                            results[index] = future.result()
                        except BaseException:
                            for other in pending:
                                other.cancel()
                            raise
                        progress.advance(bar)
        return results  # type: ignore[return-value]
