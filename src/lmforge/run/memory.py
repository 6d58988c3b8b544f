"""Peak resident memory of one stage of a run: this process and every process it started.

``ru_maxrss`` cannot give it: it is a high-water mark over the whole process, so a stage that
follows a hungrier one would report the earlier stage's peak. :class:`PeakRSS` instead samples,
from a daemon thread, the resident set of the process tree (psutil: this process plus all its
descendants — the corpus workers, the fresh processes the benches start) every
``interval`` seconds and keeps the maximum. Shared pages (a forked worker's copy-on-write
memory) count once per process, as ``top`` shows them.

On Linux the main process's own peak is also exact: its high-water mark is reset when the
stage starts (``/proc/self/clear_refs``) and read as ``VmHWM`` when it ends, so a spike shorter
than the sampling interval is not missed there. Elsewhere the samples alone decide.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psutil

from lmforge.compress.bench import peak_rss_bytes

INTERVAL_S = 0.2  # one sample costs ~1 ms (a walk over /proc): 0.5 % of one core


def tree_rss_bytes(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and all its descendants right now."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:  # the process itself is gone
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # a child that ended between the listing and the read
            continue
    return total


def _reset_own_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


class PeakRSS:
    """``with PeakRSS() as peak: ...`` then ``peak.bytes``: the largest resident set of this
    process and its children seen while the block ran."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self.bytes = 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._exact_own = False

    def _sample(self) -> None:
        self.bytes = max(self.bytes, tree_rss_bytes(self._process))

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRSS:
        self._exact_own = _reset_own_high_water_mark()
        self._sample()
        self._thread = threading.Thread(target=self._watch, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        if self._exact_own:  # reset at __enter__: VmHWM is this block's own peak
            self.bytes = max(self.bytes, peak_rss_bytes())
