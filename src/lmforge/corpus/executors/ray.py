"""Run tasks as Ray tasks on a cluster: bounded in flight, retried when a worker or node dies.

Data never goes through Ray's object store: every task reads and writes files on storage
that every node sees (the output folder, mounted at the same path on every node, or a URL
such as ``s3://bucket/prefix`` that every node reaches) and returns only its small stats. What counts as done is decided by the pipeline from the
files' completion markers, not by Ray, so a driver killed mid-build loses nothing that
finished, and a task rerun after its worker died rewrites the same bytes.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lmforge.corpus.config import RayExecutorConfig
from lmforge.corpus.executors.local import default_workers, progress_bar
from lmforge.corpus.storage import is_local
from lmforge.errors import LmforgeError

T = TypeVar("T")
R = TypeVar("R")

# 128 MiB: tasks exchange only stats (kilobytes), so Ray's default (30 % of RAM, in /dev/shm)
# would reserve memory for nothing. 75 MiB is Ray's minimum.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LmforgeError(
            "the ray executor needs Ray: pip install 'lmforge[ray]' (on every node)"
        ) from None
    return ray


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """Fail in seconds on a wrong ``host:port``: Ray itself retries an unreachable GCS for
    minutes with a warning every few seconds. (``auto`` and ``ray://`` fail fast in Ray.)"""
    if address == "auto":  # Ray reads RAY_ADDRESS first, else finds the local `ray start`
        address = os.environ.get("RAY_ADDRESS", "auto")
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            pass
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"cannot reach {address}: {exc}") from None


def run_on_node(fn: Callable[[T], R], cwd: str, task: T) -> R:
    """Run ``fn(task)`` in the driver's working directory, so relative paths name the same
    files on every node; refuse to run where the shared storage is not mounted (a task would
    otherwise write its output onto that node's own disk, where the driver never sees it)."""
    if not os.path.isdir(cwd):
        raise LmforgeError(
            f"Ray node {socket.gethostname()} does not see the driver's folder {cwd}: "
            "mount the shared storage at the same path on every node (docs/distributed.md)"
        )
    os.chdir(cwd)
    out = getattr(task, "out", None)
    if out is not None and is_local(out) and not os.path.isdir(out):
        raise LmforgeError(
            f"Ray node {socket.gethostname()} does not see the output folder {out}: "
            "mount the shared storage at the same path on every node (docs/distributed.md)"
        )
    return fn(task)


class RayExecutor:
    """Tasks on a Ray cluster (``address``), ``max_in_flight`` submitted at a time.

    A task whose worker process or node dies is rerun by Ray (``max_retries``), as is one
    that fails with an ``OSError`` (a shared file system's hiccup); any other error stops
    the build, as with the local executor. Connects on first use: a build that is already
    finished never starts Ray.
    """

    def __init__(self, config: RayExecutorConfig | None = None, workers: int | None = None):
        self.config = config or RayExecutorConfig()
        self.local_cpus = workers or default_workers()
        self._ray: Any = None
        self._remote: Any = None
        self._nodes: set[str] = set()  # every node alive at some point of the build

    # -- cluster ---------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        if self.config.address == "local" and "ray" not in sys.modules:
            # a Ray of this machine alone listens on loopback, not on the network address Ray
            # picks for a cluster (read when ray is imported, inherited by its workers)
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = import_ray()
        if not ray.is_initialized():
            address = self.config.address
            try:
                if address == "local":
                    ray.init(
                        num_cpus=self.local_cpus,
                        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                        include_dashboard=False,
                        logging_level=logging.WARNING,
                    )
                else:
                    _check_reachable(address)
                    ray.init(address=address, logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise LmforgeError(
                    f"no Ray cluster at address {address!r} ({str(exc).splitlines()[0]}): start "
                    "one with `ray start --head` (docs/distributed.md), or set "
                    "corpus.executor.address: local to start Ray on this machine only"
                ) from None
        self._remote = ray.remote(run_on_node)
        self._ray = ray
        return ray

    @property
    def workers(self) -> int:
        """Tasks the cluster runs at once."""
        cpus = self._connect().cluster_resources().get("CPU", 0)
        return max(1, int(cpus // self.config.cpus_per_task))

    def _see_nodes(self) -> None:
        self._nodes.update(n["NodeID"] for n in self._connect().nodes() if n.get("Alive"))

    def describe(self) -> dict[str, Any]:
        """The cluster: nodes that took part (alive at the start or end of a map), CPUs now."""
        ray = self._connect()
        self._see_nodes()
        return {
            "type": "ray",
            "address": self.config.address,
            "nodes": len(self._nodes),
            "cpus": int(ray.cluster_resources().get("CPU", 0)),
            "cpus_per_task": self.config.cpus_per_task,
            "workers": self.workers,
        }

    # -- tasks -----------------------------------------------------------------------
    def map(self, fn: Callable[[T], R], tasks: Sequence[T], description: str) -> list[R]:
        ray = self._connect()
        self._see_nodes()
        remote = self._remote.options(
            num_cpus=self.config.cpus_per_task,
            max_retries=self.config.max_retries,
            retry_exceptions=[OSError],
        )
        limit = self.config.max_in_flight or 2 * self.workers
        cwd = os.getcwd()
        results: list[R | None] = [None] * len(tasks)
        queue = iter(enumerate(tasks))
        pending: dict[Any, int] = {}

        def submit() -> None:
            while len(pending) < limit:
                item = next(queue, None)
                if item is None:
                    return
                pending[remote.remote(fn, cwd, item[1])] = item[0]

        with progress_bar() as progress:
            bar = progress.add_task(description, total=len(tasks))
            submit()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        results[index] = ray.get(ref)
                    except BaseException as exc:
                        for other in pending:
                            ray.cancel(other)
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, LmforgeError):
                            raise cause from None  # a user error: one line, as locally
                        raise
                    progress.advance(bar)
                submit()
        self._see_nodes()
        return results  # type: ignore[return-value]
