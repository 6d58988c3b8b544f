"""``runs/<name>/report.html``: what each stage of a run did, on one page.

Each stage folder keeps its own details (the corpus has a full report of its own);
this page puts the headline of every stage side by side: the corpus funnel, the
tokenizer, the token counts, the pretraining curves with fill-in-the-blank samples, and the
classification leaderboard.
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


def render_run_report(run_dir: Path, results: dict[str, Any]) -> str:
    sections = [f"<h1>lmforge run: {html.escape(run_dir.name)}</h1>"]
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
