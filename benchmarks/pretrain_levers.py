"""Issue 13, lever 2: which pretraining settings make the `tiny` MLM learn more per token?

Every variant pretrains the same `tiny` encoder (4 x 256) on the same tokens folder for the same
token budget, from the same seed, with one setting changed against ``base`` (the default recipe:
batch 64, lr 1e-3, 50 warmup steps, cosine to 10 %, post-norm BERT, no dropout):

- ``batch16``: batch 16 (4x the optimizer steps for the same tokens);
- ``lr2e-3`` / ``lr5e-4``: twice / half the peak learning rate;
- ``batch128-lr2e-3``: batch 128 at lr 2e-3 (the large-batch, high-rate "cramming" direction);
- ``preln``: pre-layer-norm (``RobertaPreLayerNormForMaskedLM`` from transformers, the same
  width, depth and vocabulary; it stays an encoder folder that ``AutoModel`` loads).

The figure is the held-out MLM loss and masked-token accuracy at each validation step, the
variant beside ``base`` at equal tokens. Finished variants are kept in ``OUT/<variant>/``: a
rerun reads them instead of training again.

    lmforge run      # any finished run: its tokens folder is the input
    python benchmarks/pretrain_levers.py --tokens runs/default/tokens --max-tokens 2400000 \\
        --out runs/pretrain_levers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BASE = {"batch_size": 64, "lr": 1e-3, "warmup_steps": 50}
LEVERS = {
    "base": {},
    "batch16": {"batch_size": 16},
    "lr2e-3": {"lr": 2e-3},
    "lr5e-4": {"lr": 5e-4},
    "batch128-lr2e-3": {"batch_size": 128, "lr": 2e-3, "warmup_steps": 25},
    "preln": {"arch": "preln"},
}


def preln_init(tokens: Path, folder: Path, seed: int) -> Path:
    """A fresh pre-norm encoder of the `tiny` preset's shape, saved with the tokens' tokenizer."""
    import torch
    from transformers import (
        AutoTokenizer,
        RobertaPreLayerNormConfig,
        RobertaPreLayerNormForMaskedLM,
    )

    from lmforge.models.presets import PRESETS

    if (folder / "config.json").is_file():
        return folder
    tok = AutoTokenizer.from_pretrained(tokens / "tokenizer")
    p = PRESETS["tiny"]
    config = RobertaPreLayerNormConfig(
        vocab_size=len(tok),
        hidden_size=p.hidden,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        intermediate_size=p.encoder_ffn,
        max_position_embeddings=128 + 2,  # RoBERTa counts positions from pad id + 1
        pad_token_id=tok.pad_token_id,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    model = RobertaPreLayerNormForMaskedLM._from_config(config, attn_implementation="sdpa")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def curve(folder: Path) -> dict[int, tuple[float, float]]:
    """tokens -> (held-out loss, masked-token accuracy) at every validation step."""
    from lmforge.pretrain.report import read_log

    return {
        int(row["tokens"]): (float(row["val_loss"]), float(row["val_acc"]))
        for row in read_log(folder)
        if row.get("val_loss") is not None
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=Path, required=True, help="a tokens folder (a run's tokens/)")
    ap.add_argument("--out", type=Path, default=Path("runs/pretrain_levers"))
    ap.add_argument("--levers", default=",".join(LEVERS), help="comma list of " + ",".join(LEVERS))
    ap.add_argument("--max-tokens", type=int, default=2_400_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from lmforge.pretrain.loop import pretrain

    levers = args.levers.split(",")
    unknown = [v for v in levers if v not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown lever(s) {unknown}; choose from {', '.join(LEVERS)}")
    if "base" not in levers:
        levers.insert(0, "base")
    curves = {}
    for lever in levers:
        folder = args.out / lever
        if not (folder / "manifest.json").is_file():
            options = {**BASE, **LEVERS[lever]}
            if options.pop("arch", None) == "preln":
                options["init"] = str(preln_init(args.tokens, args.out / "preln-init", args.seed))
            print(f"{lever}: {options}")
            pretrain(
                args.tokens,
                folder,
                "mlm",
                "tiny",
                max_tokens=args.max_tokens,
                seed=args.seed,
                **options,
            )
        curves[lever] = curve(folder)

    base = curves["base"]
    print(f"\nheld-out MLM loss (masked-token accuracy) at equal tokens, seed {args.seed}")
    print(f"{'lever':18s} {'tokens':>10s} {'loss':>7s} {'acc':>6s} {'base':>7s} {'Δ loss':>7s}")
    table = {}
    for lever, points in curves.items():
        rows = []
        for tokens, (loss, acc) in sorted(points.items()):
            near = min(base, key=lambda t: abs(t - tokens))  # base's step with the closest tokens
            ok = abs(near - tokens) <= 0.05 * tokens
            rows.append([tokens, loss, acc, base[near][0] if ok else None])
            delta = f"{loss - base[near][0]:+7.3f}" if ok else f"{'-':>7s}"
            ref = f"{base[near][0]:7.3f}" if ok else f"{'-':>7s}"
            print(f"{lever:18s} {tokens:10,d} {loss:7.3f} {100 * acc:5.1f}% {ref} {delta}")
        table[lever] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"max_tokens": args.max_tokens, "seed": args.seed, "curves": table}
    (args.out / "pretrain_levers.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
