"""``runs/<name>/ablation/report.html``: the outcome first, then the table, the curves, and what
each step removed (cost and benefit side by side)."""

from __future__ import annotations

import html
import json
import math
import statistics
from pathlib import Path
from typing import Any

from lmforge.ablate.runner import RANDOM_INIT
from lmforge.ablate.variants import FULL
from lmforge.report_html import html_page, html_table, png_img, pyplot


def difference(result: dict, reference: dict, kind: str) -> tuple[float, float] | None:
    """(variant − reference, its standard error) for ``kind`` = full | few_shot, or None.

    Full data: the binomial std of a macro-F1 near p on n test texts, √(2·p(1−p)/n) (one run
    each on the same test set); with pretraining replicates, the larger of that and the
    replicates' spread, √(s₁²/k₁ + s₂²/k₂) (averaging replicates does not shrink the test set's
    own noise). Few-shot: the pooled runs' spread, √(s₁²/k₁ + s₂²/k₂).
    """
    if kind not in result or kind not in reference:
        return None
    if kind == "full":
        fa, fb = result["full"], reference["full"]
        a, b = fa["macro_f1"], fb["macro_f1"]
        n = result.get("test_n") or reference.get("test_n") or 1
        p = (a + b) / 2
        se = math.sqrt(2 * p * (1 - p) / n)
        if len(fa.get("scores", ())) > 1 and len(fb.get("scores", ())) > 1:
            spread = math.sqrt(
                fa["std"] ** 2 / len(fa["scores"]) + fb["std"] ** 2 / len(fb["scores"])
            )
            se = max(se, spread)
        return a - b, se
    fa, fb = result["few_shot"], reference["few_shot"]
    ka, kb = max(1, len(fa["scores"])), max(1, len(fb["scores"]))
    return fa["mean"] - fb["mean"], math.sqrt(fa["std"] ** 2 / ka + fb["std"] ** 2 / kb)


def verdict(diff: tuple[float, float] | None) -> str:
    if diff is None:
        return ""
    delta, se = diff
    if se > 0 and abs(delta) < 2 * se:
        return f"{delta * 100:+.1f} (noise)"
    return f"{delta * 100:+.1f}"


def loss_noise(pretrained: dict) -> float | None:
    """Two standard errors of the difference between two variants' mean held-out losses, from
    the replicates' spread pooled over every variant (same model, same budget: the noise is
    alike, and two replicates per variant say little on their own). None without replicates."""
    variances, k = [], 0
    for manifest in pretrained.values():
        values = [r["final_val_loss"] for r in manifest.get("replicates", {}).values()]
        if len(values) >= 2 and None not in values:
            variances.append(statistics.variance(values))  # sample variance (n - 1)
            k = len(values)
    if not variances:
        return None
    return 2 * math.sqrt(sum(variances) / len(variances) * 2 / k)


def _trained_name(variant: dict) -> str:
    return variant["same_as"] or variant["name"]


def outcome(results: dict) -> list[str]:
    """One sentence per finding, measured against the full recipe."""
    lines = []
    pre = results["pretrained"]
    losses = {n: m.get("final_val_loss") for n, m in pre.items() if m.get("final_val_loss")}
    if losses:
        best = min(losses, key=losses.get)
        line = (
            f"Lowest held-out loss: <b>{html.escape(best)}</b> ({losses[best]:.3f}; full recipe "
            f"{losses.get(FULL, float('nan')):.3f})"
        )
        noise = loss_noise(pre)
        if noise is not None and best != FULL and FULL in losses:
            inside = losses[FULL] - losses[best] < noise
            line += (
                f"; {'inside' if inside else 'beyond'} the replicates' noise (two standard errors "
                f"of a difference: {noise:.3f})"
            )
        lines.append(line + ".")
    down = results["downstream"]
    ref = down.get(FULL)
    if ref:
        helped, hurt, flat = [], [], []
        for v in results["variants"]:
            if v["name"] in (FULL,) or v["same_as"]:
                continue
            diffs = [difference(down.get(v["name"], {}), ref, k) for k in ("full", "few_shot")]
            diffs = [d for d in diffs if d is not None]
            if not diffs:
                continue
            # removing a step (variant − full < 0 beyond noise) means the step helped
            if any(d < -2 * s for d, s in diffs):
                helped.append(v["name"])
            elif any(d > 2 * s for d, s in diffs):
                hurt.append(v["name"])
            else:
                flat.append(v["name"])
        if helped:
            lines.append(
                "Removing these made the model measurably worse (the step helped): "
                + ", ".join(helped)
                + "."
            )
        if hurt:
            lines.append(
                "Removing these made the model measurably better (the step hurt at this scale): "
                + ", ".join(hurt)
                + "."
            )
        if flat:
            lines.append(
                "Inside the noise (no measurable effect at this budget; add seeds before reading "
                "more into them): " + ", ".join(flat) + "."
            )
        if RANDOM_INIT in down:
            d = difference(ref, down[RANDOM_INIT], "full")
            f = difference(ref, down[RANDOM_INIT], "few_shot")
            parts = [f"full data {verdict(d)}" if d else "", f"few-shot {verdict(f)}" if f else ""]
            lines.append(
                "Pretraining on the full recipe vs random init (points): "
                + ", ".join(p for p in parts if p)
                + "."
            )
    return lines


def _table(results: dict) -> str:
    pre, down = results["pretrained"], results["downstream"]
    ref = down.get(FULL, {})
    headers = [
        "variant",
        "what",
        "documents",
        "characters",
        "train tokens",
        "held-out loss",
        "masked acc",
        "full-data F1",
        "Δ vs full",
        "few-shot F1",
        "Δ vs full",
    ]
    rows = []
    for v in results["variants"]:
        name = _trained_name(v)
        m = pre.get(name, {})
        d = down.get(name, {})
        fs = d.get("few_shot")
        rows.append(
            [
                v["name"] + (f" (= {v['same_as']})" if v["same_as"] else ""),
                v["description"],
                f"{v['counts']['kept']:,}",
                f"{v['chars']:,}",
                f"{m.get('tokens_seen', 0):,}",
                _fmt(m.get("final_val_loss"), m.get("final_val_loss_std")),
                _fmt(m.get("final_val_acc"), m.get("final_val_acc_std")),
                _fmt(d.get("full", {}).get("macro_f1"), d.get("full", {}).get("std")),
                verdict(difference(d, ref, "full")) if name != FULL else "",
                f"{fs['mean']:.4f} ± {fs['std']:.4f}" if fs else "",
                verdict(difference(d, ref, "few_shot")) if name != FULL else "",
            ]
        )
    if RANDOM_INIT in down:
        d = down[RANDOM_INIT]
        fs = d.get("few_shot")
        rows.append(
            [RANDOM_INIT, "no pretraining", "", "", "", "", ""]
            + [_fmt(d.get("full", {}).get("macro_f1"), d.get("full", {}).get("std"))]
            + [verdict(difference(d, ref, "full"))]
            + [f"{fs['mean']:.4f} ± {fs['std']:.4f}" if fs else ""]
            + [verdict(difference(d, ref, "few_shot"))]
        )
    return html_table(headers, rows)


def _fmt(value: Any, std: float | None = None) -> str:
    """``0.1234``, or ``0.1234 ± 0.0012`` over replicates."""
    if not isinstance(value, (int, float)):
        return ""
    return f"{value:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def _loss_curves(out: Path, results: dict) -> str:
    from lmforge.pretrain.report import read_log

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, manifest) in enumerate(results["pretrained"].items()):
        color = f"C{i % 10}"  # one colour per variant; its further replicates dashed
        for k, folder in enumerate(manifest.get("folders", [name])):
            rows = [r for r in read_log(out / "pretrain" / folder) if r.get("val_loss") is not None]
            if rows:
                ax.plot(
                    [r["tokens"] for r in rows],
                    [r["val_loss"] for r in rows],
                    color=color,
                    ls="-" if k == 0 else "--",
                    lw=1.2,
                    label=name if k == 0 else None,
                )
    ax.set_xlabel("pretraining tokens")
    ax.set_ylabel("held-out loss (same text for every variant)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_img(fig)


def _f1_bars(results: dict) -> str:
    plt = pyplot()
    down = results["downstream"]
    names = list(down)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, kind, title in ((axes[0], "full", "full data"), (axes[1], "few_shot", "few-shot")):
        values, errors, labels = [], [], []
        for name in names:
            r = down[name]
            if kind == "full" and "full" in r:
                f1 = r["full"]["macro_f1"]
                values.append(f1)
                binomial = math.sqrt(f1 * (1 - f1) / max(1, r.get("test_n", 1)))
                errors.append(max(binomial, r["full"].get("std", 0.0)))
                labels.append(name)
            elif kind == "few_shot" and "few_shot" in r:
                values.append(r["few_shot"]["mean"])
                errors.append(r["few_shot"]["std"])
                labels.append(name)
        ax.barh(labels, values, xerr=errors, capsize=3, color="#4c72b0")
        if values:
            low = min(v - e for v, e in zip(values, errors, strict=True))
            ax.set_xlim(max(0.0, low - 0.02), min(1.0, max(values) + 0.03))
        ax.set_title(f"test macro-F1, {title} (± 1 std)")
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return png_img(fig)


def _removed(out: Path) -> str:
    """What each step of the full recipe removed: documents, characters, reasons, examples."""
    stats = json.loads((out / "corpora" / FULL / "stats.json").read_text(encoding="utf-8"))
    rows = []
    for step in stats["steps"]:
        if step["kind"] == "read":
            continue
        removed = step["docs_in"] - step["docs_out"]
        examples = [
            f"{reason}: {ex['text'][:80]}"
            for reason, items in step["examples"].items()
            for ex in items[:1]
        ]
        rows.append(
            [
                step["name"],
                f"{removed:,}",
                f"{step['chars_in'] - step['chars_out']:,}",
                ", ".join(f"{k} {v:,}" for k, v in list(step["reasons"].items())[:4]),
                " | ".join(examples[:3]),
            ]
        )
    headers = ["step", "documents removed", "characters removed", "reasons", "examples"]
    return html_table(headers, rows)


def write_report(out: Path, results: dict) -> Path:
    budget = ", ".join(
        f"{k} {results['pretrain'][k]}"
        for k in ("max_steps", "max_tokens", "max_minutes")
        if results["pretrain"].get(k) is not None
    )
    ft = results["finetune"]
    replicates = html.escape(str(results["pretrain_seeds"]))
    sections = [
        "<h2>Outcome</h2><ul>" + "".join(f"<li>{line}</li>" for line in outcome(results)) + "</ul>"
        f"<p>Same model ({html.escape(str(results['pretrain']['preset']))}), same budget "
        f"({html.escape(budget)}) and pretraining seeds {replicates} (each seed one replicate "
        "of every variant; figures are means over replicates, ± their spread), same tokenizer "
        "(trained on the full variant), same held-out text (the full variant's validation "
        "documents). Downstream: "
        f"{'full data, ' if ft['full_data'] else ''}"
        f"{ft['few_shot']} per class over seeds {ft['seeds']}. Δ in points against the full "
        "recipe; '(noise)' marks a difference under two standard errors.</p>",
        "<h2>Variants</h2>" + _table(results),
    ]
    if results["pretrained"]:
        sections.append("<h2>Held-out loss while pretraining</h2>" + _loss_curves(out, results))
    if results["downstream"]:
        sections.append("<h2>Downstream</h2>" + _f1_bars(results))
    sections.append("<h2>What each step removed (full recipe)</h2>" + _removed(out))
    path = out / "report.html"
    path.write_text(html_page(f"Corpus ablation: {results['recipe']}", sections), encoding="utf-8")
    return path
