"""A stage's peak RSS is its own (not the process's high-water mark) and counts its children."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from lmforge.run.memory import PeakRSS

MB = 2**20


def test_a_later_stage_reports_its_own_lower_peak() -> None:
    # ru_maxrss would report the first block's 200 MB again for the second
    with PeakRSS() as hungry:
        block = np.ones(200 * MB, dtype=np.uint8)  # touched: resident
        del block
    with PeakRSS() as light:
        sum(range(1000))
    assert light.bytes > 0
    assert hungry.bytes - light.bytes > 150 * MB


def test_the_memory_of_a_child_process_counts() -> None:
    child = "import time, numpy; a = numpy.ones(150 * 2**20, dtype=numpy.uint8); time.sleep(1.0)"
    with PeakRSS() as alone:
        pass
    with PeakRSS(interval=0.05) as with_child:
        subprocess.run([sys.executable, "-c", child], check=True)
    assert with_child.bytes - alone.bytes > 150 * MB
