"""kill -9 of `lmforge corpus build` takes its worker processes with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from _helpers import alive, children_of, start_lmforge, wait_until

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads the process table from /proc"
)


def test_kill_9_of_the_build_takes_the_workers_with_it(sharded_inputs: Path, tmp_path: Path):
    args = ("corpus", "build", "--input", sharded_inputs, "--out", tmp_path / "out")
    proc = start_lmforge(*args, "--workers", "2")
    workers: list[int] = []
    try:

        def started() -> bool:
            workers[:] = children_of(proc.pid)
            return len(workers) >= 2

        assert wait_until(started, 120, proc, interval=0.005), "no worker processes started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_until(lambda: not any(alive(pid) for pid in workers), 5)
        survivors = [pid for pid in workers if alive(pid)]
        assert not survivors, f"workers {survivors} outlived their parent"
    finally:
        for pid in workers:  # never leave them behind, whatever happened above
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
