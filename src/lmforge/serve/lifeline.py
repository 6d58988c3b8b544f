"""A worker process dies with its parent: ``lmforge serve --workers N`` killed with SIGKILL must
not leave N orphans that keep the port and the model's memory.

:func:`die_with_parent` runs in each uvicorn worker. On Linux it asks the kernel for a SIGTERM
when the parent dies (``prctl(PR_SET_PDEATHSIG)``, through ctypes: no polling, no dependency);
elsewhere a daemon thread checks ``os.getppid()`` twice a second. SIGTERM gives the worker
uvicorn's graceful shutdown (requests in flight finish), then it exits and frees the port. If the
parent is already gone when the worker starts, the worker stops at once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)

#: ``lmforge serve`` puts its own pid here for its workers
PARENT_ENV = "LMFORGE_SERVE_PARENT"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _stop() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _watch(parent: int, interval: float) -> None:
    stopped = threading.Event()
    while not stopped.wait(interval):
        if os.getppid() != parent:
            _stop()
            return


def die_with_parent(parent: int, interval: float = 0.5) -> str:
    """Arrange a SIGTERM for this process when ``parent`` exits; returns the mechanism used."""
    how = "watch thread"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):  # no usable libc: fall back to the thread
            pass
    if how != "prctl":
        threading.Thread(
            target=_watch, args=(parent, interval), name="lmforge-parent-watch", daemon=True
        ).start()
    if os.getppid() != parent:  # it died before we asked: nobody will signal us
        log.warning("the lmforge serve process %d is gone; this worker stops", parent)
        _stop()
    return how
