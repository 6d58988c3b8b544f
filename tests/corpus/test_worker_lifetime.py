"""kill -9 of `lmforge corpus build` takes its worker processes with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads the process table from /proc"
)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == parent:
                pids.append(int(entry))
    return pids


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has exited


def test_kill_9_of_the_build_takes_the_workers_with_it(sharded_inputs: Path, tmp_path: Path):
    cmd = [
        sys.executable,
        "-m",
        "lmforge.cli",
        "corpus",
        "build",
        "--input",
        str(sharded_inputs),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "2",
    ]
    env = dict(os.environ, LMFORGE_PROGRESS="0")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(workers) < 2:
            workers = children_of(proc.pid)
            time.sleep(0.005)
        assert len(workers) >= 2, "the build never started its worker processes"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.05)
        survivors = [pid for pid in workers if alive(pid)]
        assert not survivors, f"workers {survivors} outlived their parent"
    finally:
        for pid in workers:  # never leave them behind, whatever happened above
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
