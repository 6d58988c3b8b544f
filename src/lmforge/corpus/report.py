"""``report.html`` (plots embedded as PNG) and the terminal summary of a built corpus."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lmforge.corpus.storage import Storage
from lmforge.corpus.writer import write_text_atomic
from lmforge.report_html import html_page, html_table, png_img, pyplot
from lmforge.terminal import make_console


def _plots(stats: dict[str, Any]) -> dict[str, str]:
    plt = pyplot()
    plots: dict[str, str] = {}
    steps = [s for s in stats["steps"] if s["docs_in"]]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = [s["name"] for s in steps]
    ax.bar(range(len(steps)), [s["docs_out"] for s in steps], color="#4c72b0")
    ax.set_xticks(range(len(steps)), names, rotation=30, ha="right")
    ax.set_ylabel("documents kept after step")
    ax.set_title("Documents remaining after each step")
    plots["funnel"] = png_img(fig)

    hist = stats["length_hist"]
    edges = hist["edges"]
    labels = [
        f"<{edges[i + 1]}" if i + 1 < len(edges) else f">={edges[-1]}" for i in range(len(edges))
    ]
    last = max(
        [i for i, (a, b) in enumerate(zip(hist["before"], hist["after"], strict=True)) if a or b]
        or [0]
    )
    fig, ax = plt.subplots(figsize=(8, 3.2))
    xs = range(last + 1)
    ax.bar([x - 0.2 for x in xs], hist["before"][: last + 1], width=0.4, label="read")
    ax.bar([x + 0.2 for x in xs], hist["after"][: last + 1], width=0.4, label="kept")
    ax.set_xticks(list(xs), labels[: last + 1], rotation=45, ha="right")
    ax.set_xlabel("characters per document")
    ax.set_ylabel("documents")
    ax.set_title("Length distribution before and after")
    ax.legend()
    plots["lengths"] = png_img(fig)

    if stats["languages"]:
        langs = list(stats["languages"].items())[:15]
        fig, ax = plt.subplots(figsize=(6, 2.8))
        ax.bar([k for k, _ in langs], [v for _, v in langs], color="#55a868")
        ax.set_yscale("log")
        ax.set_ylabel("kept documents")
        ax.set_title("Language of kept documents")
        plots["languages"] = png_img(fig)
    return plots


def step_rows(stats: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for s in stats["steps"]:
        removed = s["docs_in"] - s["docs_out"]
        rate = f"{s['docs_in'] / s['seconds']:,.0f}" if s["seconds"] >= 0.001 else "-"
        share = f"{removed / s['docs_in']:.1%}" if s["docs_in"] else "-"
        rows.append(
            [
                s["name"],
                f"{s['docs_in']:,}",
                f"{s['docs_out']:,}",
                f"{removed:,}",
                share,
                f"{s['chars_in']:,}",
                f"{s['chars_out']:,}",
                f"{s['seconds']:.2f}",
                rate,
            ]
        )
    return rows


STEP_HEADERS = [
    "step",
    "docs in",
    "docs out",
    "removed",
    "removed %",
    "chars in",
    "chars out",
    "seconds",
    "docs/s",
]


def _clusters_html(extra: dict[str, Any]) -> str:
    """Summary figures of a dedup step, then its largest groups with the kept document."""
    groups = extra.get("largest_clusters") or extra.get("largest_groups") or []
    figures = [
        [k, f"{v:,}" if isinstance(v, int) else v]
        for k, v in extra.items()
        if not isinstance(v, list)
    ]
    parts = [html_table(["figure", "value"], figures)] if figures else []
    if groups:
        rows = [
            [g.get("size", ""), g.get("kept_id", ""), g.get("excerpt", "")[:120]]
            for g in groups[:10]
        ]
        parts += [
            "<p>Largest groups (the first document in corpus order is kept):</p>",
            html_table(["size", "kept document", "text"], rows),
        ]
    return "".join(parts)


def _sources_html(stats: dict[str, Any]) -> str:
    sources = stats.get("sources") or {}
    rows = []
    for name, counts in sources.items():
        read, kept = counts.get("read", 0), counts.get("kept", 0)
        share = f"{1 - kept / read:.1%}" if read else "-"
        rows.append([name, f"{read:,}", f"{kept:,}", f"{read - kept:,}", share])
    return html_table(["source", "read", "kept", "removed", "removed %"], rows) if rows else ""


def _executor_text(manifest: dict[str, Any]) -> str:
    """'Built by the ray executor on 2 nodes, 16 workers.' (empty for manifests without it)."""
    executor = manifest.get("executor")
    if not executor:
        return ""
    nodes = executor["nodes"]
    return (
        f"Built by the {html.escape(executor['type'])} executor on {nodes} node"
        f"{'s' if nodes != 1 else ''}, {executor['workers']} workers."
    )


def write_report(
    out: Path, stats: dict[str, Any], manifest: dict[str, Any], storage: Storage | None = None
) -> Path:
    """Write ``out/report.html`` (through `storage` when given, see
    :mod:`lmforge.corpus.storage`): one page, plots inline, nothing fetched from the network."""
    plots = _plots(stats)
    counts = stats["counts"]
    sections = [
        f"<h1>Corpus report: {html.escape(out.name)}</h1>",
        f"<p>Read <b>{counts['read']:,}</b> documents, kept <b>{counts['kept']:,}</b>, removed "
        f"<b>{counts['removed']:,}</b> (every removal is in <code>removed/</code> with its step and reason). "
        f"Characters: {stats['chars']['read']:,} read, {stats['chars']['kept']:,} kept. "
        f"Config hash <code>{manifest['config_hash']}</code>, output hash "
        f"<code>{manifest['output_hash'][:16]}</code>. {_executor_text(manifest)}</p>",
        _sources_html(stats),
        "<h2>Steps</h2>",
        html_table(STEP_HEADERS, step_rows(stats)),
        plots["funnel"],
        "<h2>Why documents were removed</h2>",
    ]
    for s in stats["steps"]:
        if not s["reasons"]:
            continue
        sections.append(f"<h3>{html.escape(s['name'])}</h3>")
        rows = []
        for reason, n in sorted(s["reasons"].items(), key=lambda kv: (-kv[1], kv[0])):
            examples = " | ".join(e["text"][:80] for e in s["examples"].get(reason, []))
            rows.append([reason, f"{n:,}", examples])
        sections.append(html_table(["reason", "documents", "examples"], rows))
    counters = [(s["name"], k, v) for s in stats["steps"] for k, v in s["counters"].items()]
    if counters:
        sections += [
            "<h2>Counters (masked PII, changed texts, ...)</h2>",
            html_table(["step", "counter", "value"], [[a, b, f"{c:,}"] for a, b, c in counters]),
        ]
    sections += ["<h2>Lengths</h2>", plots["lengths"]]
    if "languages" in plots:
        sections += ["<h2>Languages</h2>", plots["languages"]]
    for key, extra in stats["global"].items():
        if extra:
            sections += [f"<h2>Duplicates: {html.escape(key)}</h2>", _clusters_html(extra)]
    sections += [
        "<h2>Manifest</h2>",
        f"<pre>{html.escape(json.dumps({k: manifest[k] for k in ('counts', 'versions', 'timings')}, indent=1))}</pre>",
    ]
    page = html_page("lmforge corpus report", sections)
    path = out / "report.html"
    write_text_atomic(path, page, storage)
    return path


def print_summary(stats: dict[str, Any], console: Console | None = None) -> None:
    """The one-screen summary printed after a build and by ``lmforge corpus stats``."""
    console = console or make_console()
    table = Table(title="corpus steps")
    columns = ["step", "in", "out", "removed", "%", "seconds", "docs/s"]
    for header in columns:
        table.add_column(header, justify="left" if header == "step" else "right", no_wrap=True)
    for row in step_rows(stats):
        table.add_row(*(row[:5] + row[7:]))
    console.print(table)
    reasons = Table(title="top removal reasons")
    reasons.add_column("step")
    reasons.add_column("reason")
    reasons.add_column("documents", justify="right")
    top = sorted(
        ((n, s["name"], r) for s in stats["steps"] for r, n in s["reasons"].items()), reverse=True
    )
    for n, step, reason in top[:12]:
        reasons.add_row(step, reason, f"{n:,}")
    console.print(reasons)
    for name, counts in (stats.get("sources") or {}).items():
        read, kept = counts["read"], counts["kept"]
        share = f"{1 - kept / read:.1%}" if read else "-"
        console.print(f"source {name}: read {read:,}, kept {kept:,} (removed {share})")
    c = stats["counts"]
    console.print(f"read {c['read']:,} = kept {c['kept']:,} + removed {c['removed']:,}")
