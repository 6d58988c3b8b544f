"""The one place lmforge makes the rich Console it prints to.

On a terminal: rich's own console (the terminal's width, colour, live progress bars). Written
to a file or a pipe (a run's log, CI, ``| less``), rich assumes 80 columns and squeezes a wide
table into 3-character columns (``accur…``, ``macro…``). There, a table is printed at its
natural width instead, so every header and cell appears in full; everything else (rules,
wrapped text, progress) keeps rich's width.
"""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

MAX_TABLE_WIDTH = 10_000  # wider than any table lmforge prints; a bound for the measurement


def make_console(*, stderr: bool = False, file: IO[str] | None = None) -> Console:
    """A Console for lmforge's output on stdout (or stderr, or ``file``)."""
    console = Console(stderr=stderr, file=file)
    if console.is_terminal or console.is_jupyter:
        return console
    return _FileConsole(stderr=stderr, file=file)


class _FileConsole(Console):
    """A Console writing to a file or a pipe: tables are never narrowed to fit its width."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        tables = [obj for obj in objects if isinstance(obj, Table)]
        options = self.options.update(width=MAX_TABLE_WIDTH)
        wide = max((Measurement.get(self, options, t).maximum for t in tables), default=0)
        if wide <= self.width:
            super().print(*objects, **kwargs)
            return
        before = self.width
        self.width = wide  # rich's print(width=...) can only narrow, never widen
        try:
            super().print(*objects, **kwargs)
        finally:
            self.width = before
