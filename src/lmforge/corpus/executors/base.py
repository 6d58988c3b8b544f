"""The executor interface: map one picklable function over a list of tasks, results in task order.

The corpus pipeline only ever calls :meth:`Executor.map`; steps never see the executor.
Data moves between tasks as files, never through the executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    workers: int

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], description: str) -> list[R]:
        """Run ``fn`` on every task (in any order, possibly in parallel); return results in task order."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ran the build, for the manifest and report: ``type``, ``nodes``, ``workers``, ..."""
        ...
