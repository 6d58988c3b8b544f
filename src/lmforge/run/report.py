"""``runs/<name>/report.html``: what each stage of a run did, on one page.

Each stage folder keeps its own details (the corpus has a full report of its own);
this page opens with the outcome (the model the run serves, why, its scores beside the
others', its size and speed beside Naive Bayes', the command that serves it) and each stage's
wall time and peak memory, then puts the headline of every stage side by side: the corpus funnel, the
tokenizer, the token counts, the pretraining curves with fill-in-the-blank samples, the
classification leaderboard and the compression table.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from lmforge.report_html import html_page, html_table, png_file_img, png_img, pyplot

# Fill-in-the-blank prompts shown for a masked-LM run (the seed's 预训练 task).
FILL_MASK_PROMPTS = [
    "这个手机[MASK]量很好",
    "物流很[MASK]，包装也不错",
    "房间很干净，服务[MASK]度也很好",
    "中国共产党[MASK]央委员会",
    "今天天[MASK]很好",
]


def _fmt(value: Any) -> str:
    """Integers with thousands separators, floats to 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _corpus_section(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    counts = manifest["counts"]
    stats = json.loads((run_dir / "corpus" / "stats.json").read_text(encoding="utf-8"))
    rows = [
        [s["name"], f"{s['docs_in']:,}", f"{s['docs_out']:,}", f"{s['docs_in'] - s['docs_out']:,}"]
        for s in stats["steps"]
    ]
    return [
        "<h2>Corpus</h2>",
        f"<p>Read {counts['read']:,} documents, kept {counts['kept']:,}, removed {counts['removed']:,}. "
        '<a href="corpus/report.html">Full corpus report</a> (reasons, examples, lengths, duplicates).</p>',
        html_table(["step", "in", "out", "removed"], rows),
    ]


def _tokenizer_section(info: dict[str, Any]) -> list[str]:
    rows = [[k, _fmt(info[k])] for k in ("kind", "vocab_size", "documents", "seconds") if k in info]
    heldout = info.get("heldout") or {}
    rows += [
        [f"held-out {k}", _fmt(v)] for k, v in heldout.items() if not isinstance(v, (dict, list))
    ]
    return ["<h2>Tokenizer</h2>", html_table(["figure", "value"], rows)]


def _tokens_section(manifest: dict[str, Any]) -> list[str]:
    rows = [
        [split, f"{info['documents']:,}", f"{info['tokens']:,}"]
        for split, info in manifest["splits"].items()
    ]
    return ["<h2>Token shards</h2>", html_table(["split", "documents", "tokens"], rows)]


def _pretrain_section(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    from lmforge.pretrain.report import read_log

    folder = run_dir / "pretrain"
    log = read_log(folder)
    parts = ["<h2>Pretraining</h2>"]
    keys = [k for k in manifest if isinstance(manifest[k], (int, float, str)) and k != "tokenizer"]
    parts.append(html_table(["figure", "value"], [[k, _fmt(manifest[k])] for k in keys]))
    train = [(r["tokens"], r["train_loss"]) for r in log if r.get("train_loss") is not None]
    val = [(r["tokens"], r["val_loss"]) for r in log if r.get("val_loss") is not None]
    if train or val:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 3.2))
        if train:
            ax.plot(*zip(*train, strict=True), label="train loss", alpha=0.6)
        if val:
            ax.plot(*zip(*val, strict=True), "o-", label="validation loss")
        ax.set_xlabel("training tokens")
        ax.set_ylabel("loss")
        ax.set_title("Pretraining loss")
        ax.legend()
        parts.append(png_img(fig))
    acc = [(r["tokens"], r["val_acc"]) for r in log if r.get("val_acc") is not None]
    if acc:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 2.8))
        ax.plot(*zip(*acc, strict=True), "o-", color="#55a868")
        ax.set_xlabel("training tokens")
        ax.set_ylabel("masked-token accuracy")
        ax.set_title("Held-out masked-token accuracy")
        parts.append(png_img(fig))
    samples = manifest.get("fill_mask_samples")
    if samples:
        rows = [[s["prompt"], "  ".join(f"{t} ({p:.2f})" for t, p in s["top"])] for s in samples]
        parts += ["<h3>Fill in the blank</h3>", html_table(["prompt", "top fillers"], rows)]
    return parts


def _classify_section(run_dir: Path, doc: dict[str, Any]) -> list[str]:
    from lmforge.classify.evaluate import LEADERBOARD_HEADERS, leaderboard_cells

    rows = doc.get("rows", [])
    sizes = (doc.get("data") or {}).get("sizes", {})
    leak = doc.get("leakage") or {}
    split = ", ".join(f"{k} {v:,}" for k, v in sizes.items())
    parts = [
        "<h2>Classification</h2>",
        f"<p>{html.escape(str((doc.get('data') or {}).get('source', '')))}: {split}. "
        f"Leakage guard: {leak.get('in_train', 0)} test texts in train/val, "
        f"{leak.get('in_corpus', 0)} in the pre-training corpus "
        f"({leak.get('corpus_docs', 0):,} documents checked).</p>",
        html_table(list(LEADERBOARD_HEADERS), [leaderboard_cells(r) for r in rows]),
    ]
    png = run_dir / "classify" / "leaderboard.png"
    if png.is_file():
        parts.append(png_file_img(png, "classification leaderboard"))
    return parts


def fill_mask_samples(
    model_dir: Path, prompts: list[str] = FILL_MASK_PROMPTS, top_k: int = 5
) -> list[dict]:
    """Top-k fillers for each prompt, for the report (masked-LM models only)."""
    from lmforge.generate import fill_mask

    samples = []
    for prompt in prompts:
        top = fill_mask(model_dir, prompt, top_k=top_k)[0]
        samples.append({"prompt": prompt, "top": [(token, round(float(p), 4)) for token, p in top]})
    return samples


def _outcome_section(doc: dict[str, Any]) -> list[str]:
    """What the run made, first: the served model, its scores beside every other model's, its
    size and speed beside Naive Bayes', and the command that serves it."""
    from lmforge.compress.bench import table_rows

    served = doc["model"]
    rows = [
        [
            ("▶ " if c["name"] == served else "") + c["name"],
            "-" if c.get("val_macro_f1") is None else f"{c['val_macro_f1']:.4f}",
            "-" if c.get("test_macro_f1") is None else f"{c['test_macro_f1']:.4f}",
            "-" if c.get("size_bytes") is None else f"{c['size_bytes'] / 1e6:.2f} MB",
        ]
        for c in doc["candidates"]
    ]
    headers, cells = table_rows(doc.get("bench") or [])
    return [
        "<h2>Outcome</h2>",
        f"<p>This run serves <b>{html.escape(served)}</b>: validation macro-F1 "
        f"{doc['val_macro_f1']:.4f}, the best of {len(doc['candidates'])} models by validation "
        f"score (the test split only reports: {doc['test_macro_f1']:.4f}). Serve it with "
        f"<code>{html.escape(doc['command'])}</code>.</p>",
        html_table(["model", "val macro-F1", "test macro-F1", "size"], rows),
        "<p>The served model beside Naive Bayes on the test split, one thread, each in a fresh "
        "process:</p>",
        html_table(headers, cells) if cells else "",
    ]


def _rss(value: int | None) -> str:
    return "-" if not value else f"{value / 2**20:,.0f} MiB"


def _timings_section(timings: list[dict]) -> list[str]:
    """Each stage's wall time and peak resident memory (the process and its workers)."""
    rows = [
        [t["stage"], t["action"], f"{t['seconds']:.0f}", _rss(t.get("peak_rss_bytes"))]
        for t in timings
    ]
    total = sum(t["seconds"] for t in timings)
    peak = max((t.get("peak_rss_bytes") or 0 for t in timings), default=0)
    rows.append(["total", "", f"{total:.0f}", _rss(peak)])
    headers = ["stage", "this run", "wall s", "peak RSS"]
    return ["<h2>Stage timings</h2>", html_table(headers, rows)]


def render_run_report(run_dir: Path, results: dict[str, Any]) -> str:
    sections = [f"<h1>lmforge run: {html.escape(run_dir.name)}</h1>"]
    if "serving" in results:
        sections += _outcome_section(results["serving"])
    if results.get("timings"):
        sections += _timings_section(results["timings"])
    if "corpus" in results:
        sections += _corpus_section(run_dir, results["corpus"])
    if results.get("tokenizer"):
        sections += _tokenizer_section(results["tokenizer"])
    if "tokens" in results:
        sections += _tokens_section(results["tokens"])
    if "pretrain" in results:
        sections += _pretrain_section(run_dir, results["pretrain"])
    if "classify" in results:
        sections += _classify_section(run_dir, results["classify"])
    if "compress" in results:
        from lmforge.compress.report import html_section

        doc = results["compress"]
        sections.append(html_section(doc["rows"], doc.get("headline")))
    return html_page(f"lmforge run {run_dir.name}", sections)
