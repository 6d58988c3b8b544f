"""``lmforge pretrain``, ``lmforge fill-mask`` and ``lmforge generate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lmforge.errors import LmforgeError
from lmforge.models.presets import PRESETS, preset_table


def pretrain_command(
    tokens_dir: Annotated[Path, typer.Argument(help="tokens folder from `lmforge tokenizer pack`")],
    out: Annotated[Path, typer.Option(help="output folder (a save_pretrained model folder)")],
    objective: Annotated[
        str,
        typer.Option(
            help="mlm (BERT-style encoder), rtd (ELECTRA replaced-token detection: an encoder "
            "trained on every token) or clm (Llama-style decoder)"
        ),
    ] = "mlm",
    preset: Annotated[str, typer.Option(help=f"model size: {preset_table()}")] = "tiny",
    init: Annotated[
        Path | None,
        typer.Option(help="local HF model folder to continue pretraining (instead of --preset)"),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="stop after this many optimizer steps")
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(help="stop after this many minutes (default 10 if no budget is given)"),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="stop after this many training tokens")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="sequences per micro-batch (per process)")] = 64,
    seq_len: Annotated[
        int, typer.Option(help="sequence length (also the model's positions)")
    ] = 128,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-3,
    warmup_steps: Annotated[
        int, typer.Option(help="linear warmup steps, then cosine to 10 %")
    ] = 50,
    grad_accum: Annotated[int, typer.Option(help="micro-batches per optimizer step")] = 1,
    eval_every: Annotated[int, typer.Option(help="validate every N steps")] = 100,
    save_every: Annotated[int, typer.Option(help="checkpoint every N steps")] = 200,
    resume: Annotated[bool, typer.Option(help="continue exactly from OUT/checkpoint")] = False,
    seed: Annotated[int, typer.Option(help="seed for init, batches and masking")] = 0,
    whole_word_mask: Annotated[bool, typer.Option(help="MLM: mask whole jieba words")] = False,
    dtype: Annotated[
        str, typer.Option(help="auto (bf16 where measured faster), bf16 or fp32")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda")] = "auto",
    snapshot_steps: Annotated[
        str,
        typer.Option(help="also save OUT/snapshots/step-N/ at these steps, e.g. 500,1000,2000"),
    ] = "",
) -> None:
    """Pretrain a model (MLM or CLM) on a tokens folder. Runs unchanged under torchrun."""
    from lmforge.pretrain.loop import pretrain

    if not tokens_dir.is_dir():
        raise LmforgeError(f"{tokens_dir}: no such folder")
    try:
        snapshots = sorted({int(s) for s in snapshot_steps.split(",") if s.strip()})
    except ValueError:
        raise LmforgeError(f"--snapshot-steps: {snapshot_steps!r} is not a list of steps") from None
    if init is None and preset not in PRESETS:
        raise LmforgeError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    pretrain(
        tokens_dir,
        out,
        objective,
        preset,
        init=init,
        max_steps=max_steps,
        max_minutes=max_minutes,
        max_tokens=max_tokens,
        batch_size=batch_size,
        seq_len=seq_len,
        lr=lr,
        warmup_steps=warmup_steps,
        grad_accum=grad_accum,
        eval_every=eval_every,
        save_every=save_every,
        resume=resume,
        seed=seed,
        whole_word_mask=whole_word_mask,
        dtype=dtype,
        device=device,
        snapshot_steps=snapshots,
    )


def fill_mask_command(
    model_dir: Annotated[Path, typer.Argument(help="MLM model folder")],
    text: Annotated[str, typer.Argument(help='text with [MASK], e.g. "这个手机[MASK]量很好"')],
    top_k: Annotated[int, typer.Option(help="fillers to show per mask")] = 5,
) -> None:
    """Print the top-k fillers of each [MASK] with their probabilities."""
    from lmforge.generate import fill_mask

    for i, fillers in enumerate(fill_mask(model_dir, text, top_k)):
        typer.echo(f"mask {i + 1}:")
        for token, prob in fillers:
            typer.echo(f"  {token}\t{prob:.3f}\t{text.replace('[MASK]', token, 1)}")


def generate_command(
    model_dir: Annotated[Path, typer.Argument(help="causal LM folder (ours or any local HF one)")],
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate at most")] = 50,
    temperature: Annotated[float, typer.Option(help="softmax temperature (0 = greedy)")] = 1.0,
    top_k: Annotated[int, typer.Option(help="sample among the k most likely (0 = all)")] = 0,
    top_p: Annotated[float, typer.Option(help="nucleus: smallest set with this probability")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option(help="> 1 discourages repeats")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="seed for reproducible sampling")] = None,
    greedy: Annotated[bool, typer.Option(help="always take the most likely token")] = False,
) -> None:
    """Generate a continuation of --prompt, streamed to the terminal as tokens come."""
    from lmforge.generate import load_causal_lm, stream_text

    model, tokenizer = load_causal_lm(model_dir)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    for piece in stream_text(
        model,
        tokenizer,
        prompt,
        max_new_tokens,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
    ):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain_command)
    app.command("fill-mask")(fill_mask_command)
    app.command("generate")(generate_command)
