"""The compression section of the run report (HTML), from :func:`lmforge.compress.bench` rows."""

from __future__ import annotations

import html

from lmforge.compress.bench import table_rows
from lmforge.report_html import html_table


def html_section(rows: list[dict], headline: dict | None = None) -> str:
    """``<h2>`` + the side-by-side table (+ a sentence on the headline ratios when given)."""
    headers, cells = table_rows(rows)
    parts = ["<h2>Compression: distilled int8 student vs teacher</h2>"]
    if headline:
        f1 = headline.get("f1_delta_points")
        fast = headline.get("x_faster_p50")
        small = headline.get("x_smaller")
        parts.append(
            "<p>"
            + html.escape(
                f"int8 ONNX student vs the teacher through the transformers pipeline: "
                f"macro-F1 {f1:+.2f} points, p50 batch-1 latency {fast:.1f}x lower, "
                f"{small:.1f}x smaller on disk."
                if None not in (f1, fast, small)
                else "int8 ONNX student vs teacher"
            )
            + "</p>"
        )
    parts.append(html_table(headers, cells))
    parts.append(
        "<p>Latency: one text per call after warm-up, each variant in a fresh process with the "
        "same thread count; size: weights + tokenizer files + JSON.</p>"
    )
    return "\n".join(parts)
