"""What many test modules need: the CLI in a subprocess, the process table, a free port, the
records a file source reads. Imported as ``from _helpers import ...`` (tests/ is on sys.path:
pytest puts a rootdir conftest's folder there)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def lmforge_command(*args: object) -> list[str]:
    """``python -m lmforge.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", "lmforge.cli", *map(str, args)]


def run_lmforge(*args: object, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Run the CLI to the end, output captured as text. One thread, as everywhere in the tests:
    on a loaded 2-core machine torch's second OpenMP thread spin-waits for the first and a
    2-second run takes minutes. ``env`` adds variables."""
    return subprocess.run(
        lmforge_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


def start_lmforge(*args: object, **popen: object) -> subprocess.Popen:
    """Start the CLI without progress bars (output discarded unless ``popen`` says otherwise),
    for a test that kills it or talks to it."""
    popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} | popen
    env = {**os.environ, "LMFORGE_PROGRESS": "0", **(popen.pop("env", None) or {})}
    return subprocess.Popen(lmforge_command(*args), env=env, **popen)


def wait_until(
    condition: Callable[[], object],
    timeout: float,
    proc: subprocess.Popen | None = None,
    interval: float = 0.05,
) -> bool:
    """Poll ``condition`` until it is true (True), ``timeout`` seconds pass or ``proc`` exits
    (False). A condition that raises ``OSError`` (a server not listening yet) counts as false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        try:
            if condition():
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc (Linux), None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def children_of(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (Linux)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == parent:
                pids.append(int(entry))
    return pids


def alive(pid: int) -> bool:
    """The process runs (Linux; a zombie has exited)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def read_records(*paths: object, **config: object):
    """(documents, bad records) a ``files`` source with ``config`` reads from ``paths``; every
    bad record has a known reason and a one-line detail."""
    from lmforge.corpus.document import Document
    from lmforge.corpus.readers import BAD_RECORD_REASONS
    from lmforge.corpus.sources import FileSource, plan_shards, read_shard

    source = FileSource(paths=[str(p) for p in paths], **config)
    docs, bad = [], []
    for shard in plan_shards([source]):
        for record in read_shard(shard, source):
            (docs if isinstance(record, Document) else bad).append(record)
    for record in bad:
        assert record.reason in BAD_RECORD_REASONS
        assert "\n" not in record.detail  # one line
    return docs, bad


# Cheap corpus steps, one of them global: phase 0 writes documents and signatures to _work/,
# phase 1 reads them back (from the output) and writes data/ and removed/. The output tests
# (local, memory://, S3) build this config and compare the outputs.
OUTPUT_TEST_STEPS = [{"type": "length"}, {"type": "exact_dedup"}]


def output_test_config(inputs: Path):
    """A corpus config over ``inputs`` with ``OUTPUT_TEST_STEPS``, writing Parquet and JSONL."""
    from lmforge.corpus.config import CorpusConfig

    return CorpusConfig(
        sources=[{"type": "files", "paths": [str(inputs)]}],
        steps=OUTPUT_TEST_STEPS,
        output={"formats": ["parquet", "jsonl"]},
    )
