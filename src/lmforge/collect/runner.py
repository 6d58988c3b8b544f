"""One collect pass over every source of a ``collect:`` section, and periodic passes.

:func:`run_collect` is what ``lmforge collect`` and the ``collect`` stage of
``lmforge run`` call; each pass is incremental (API cursors and the crawl frontier live
in the store), so running it again, by hand, from cron or with ``--every``, only fetches
what is new or was not finished.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from lmforge.collect.api import PassResult, run_api_pass
from lmforge.collect.config import ApiSource, CollectConfig
from lmforge.collect.crawl import run_crawl_pass
from lmforge.collect.store import Store
from lmforge.errors import LmforgeError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """'90s', '15m', '1h', '1d', '1h30m' -> seconds; LmforgeError otherwise."""
    parts = re.fullmatch(r"(?:\d+(?:\.\d+)?[smhd])+", text.strip().lower())
    if not parts:
        raise LmforgeError(f"--every {text!r}: give a duration such as 30m, 1h or 1d")
    seconds = sum(
        float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", text.lower())
    )
    if seconds <= 0:
        raise LmforgeError(f"--every {text!r}: the interval must be positive")
    return seconds


def run_collect(
    config: CollectConfig, run_dir: Path, console: Console | None = None
) -> dict[str, Any]:
    """One pass over every source into the store; writes ``<run_dir>/collect.json`` and
    returns it: the store URL (password hidden), per-source results and store counts."""
    from sqlalchemy.engine import make_url

    console = console or Console()
    run_dir = Path(run_dir)
    url = config.store_url(run_dir)
    store = Store(url)
    started = time.time()
    results: list[PassResult] = []
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            for source in config.sources:
                task = progress.add_task(f"collect {source.name} ({source.type})", status="")

                def update(result: PassResult, task=task) -> None:
                    progress.update(
                        task,
                        status=f"{result.pages:,} pages, {result.new:,} new rows, "
                        f"{result.errors:,} errors",
                    )

                run = run_api_pass if isinstance(source, ApiSource) else run_crawl_pass
                results.append(run(source, store, on_page=update))
                update(results[-1])
        counts = {source.name: store.counts(source.name) for source in config.sources}
    finally:
        store.close()
    summary = {
        "store": make_url(url).render_as_string(hide_password=True),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "new": sum(r.new for r in results),
        "sources": [r.to_dict() for r in results],
        "counts": counts,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "collect.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for result in results:
        state = "done" if result.finished else "to be continued"
        console.print(
            f"collect {result.source}: {result.pages:,} pages, {result.items:,} items, "
            f"{result.new:,} new rows, {result.errors:,} errors ({state})"
        )
        for message in result.messages[:3]:
            console.print(f"  [yellow]error:[/] {message}", highlight=False)
        if len(result.messages) > 3:
            console.print(f"  ... and {len(result.messages) - 3} more (see the error column)")
    console.print(f"store: {summary['store']}")
    return summary


def run_periodic(
    config: CollectConfig,
    run_dir: Path,
    every: float,
    passes: int | None = None,
    console: Console | None = None,
) -> int:
    """A pass every ``every`` seconds (counted from the start of the previous one; a pass
    that takes longer is followed at once), ``passes`` times or until interrupted.
    Returns the number of passes run."""
    console = console or Console()
    done = 0
    while passes is None or done < passes:
        started = time.monotonic()
        run_collect(config, run_dir, console)
        done += 1
        if passes is not None and done >= passes:
            break
        wait = max(0.0, every - (time.monotonic() - started))
        console.print(f"next pass in {wait:,.0f} s (Ctrl-C stops)")
        time.sleep(wait)
    return done
