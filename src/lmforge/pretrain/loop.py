"""The pretraining loop (MLM or CLM): one function, the whole step visible on one screen.

``pretrain(tokens_dir, out_dir, ...)`` builds or loads the model, then runs: micro-batches
(gradient accumulation, DDP ``no_sync`` between them) -> clip -> AdamW step with the
warmup + cosine learning rate -> log / validate / checkpoint -> stop on the first budget hit
(steps, tokens or minutes). Under ``torchrun`` every rank takes a disjoint slice of each
epoch's batches and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from lmforge.errors import LmforgeError
from lmforge.models.presets import build_model, load_model, param_count
from lmforge.pretrain.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from lmforge.pretrain.data import CLMData, MLMData, read_manifest, read_split
from lmforge.pretrain.hardware import choose_dtype, matmul_peak, train_flops_per_token
from lmforge.pretrain.objective import objective_module
from lmforge.pretrain.report import RunLog


def lr_at(
    step: int, progress: float, lr: float, warmup_steps: int, min_ratio: float = 0.1
) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``lr`` to ``min_ratio * lr`` as the
    budget's ``progress`` (0..1, the largest of steps, tokens and minutes used) goes to 1."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _reduce(values: list[float], device, world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _optimizer(model, lr: float, weight_decay: float, device) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, foreach=True)


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


@torch.no_grad()
def evaluate(net, data, batches, seed: int, autocast, device, world: int, rank: int) -> dict:
    """Validation loss, perplexity and accuracy (masked tokens for MLM, next token for CLM)."""
    net.eval()
    loss_sum = n_sum = correct_sum = 0.0
    for i in range(rank, len(batches), world):
        b = {
            k: v.to(device)
            for k, v in data.batch(batches[i], np.random.default_rng([seed, 2, i])).items()
        }
        with autocast:
            loss, n, correct = net(**b)
        loss_sum, n_sum, correct_sum = (
            loss_sum + loss.item() * n,
            n_sum + n,
            correct_sum + int(correct),
        )
    net.train()
    loss_sum, n_sum, correct_sum = _reduce([loss_sum, n_sum, correct_sum], device, world)
    loss = loss_sum / max(n_sum, 1)
    return {
        "val_loss": loss,
        "val_ppl": math.exp(min(loss, 50)),
        "val_acc": correct_sum / max(n_sum, 1),
    }


def _save_folder(model, tokenizer, folder: Path) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(folder)
    hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(folder)


def pretrain(
    tokens_dir: str | Path,
    out_dir: str | Path,
    objective: str = "mlm",
    preset: str = "tiny",
    *,
    init: str | Path | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    max_tokens: int | None = None,
    batch_size: int = 64,
    seq_len: int = 128,
    lr: float = 1e-3,
    warmup_steps: int = 50,
    grad_accum: int = 1,
    weight_decay: float = 0.01,
    clip: float = 1.0,
    eval_every: int = 100,
    eval_batches: int = 20,
    save_every: int = 200,
    log_every: int = 10,
    resume: bool = False,
    seed: int = 0,
    whole_word_mask: bool = False,
    dtype: str = "auto",
    progress: bool = True,
    snapshot_steps: list[int] | tuple[int, ...] = (),
    interrupt_at: int | None = None,
) -> dict:
    """Pretrain a model on a tokens folder; write a ``save_pretrained`` folder to ``out_dir``.

    Returns the run manifest (also written as ``out_dir/manifest.json``). Without any budget the
    run stops after 10 minutes. ``interrupt_at`` stops right after that step without saving,
    as a crash would (used to test ``resume``). ``snapshot_steps``: also write a loadable
    ``save_pretrained`` folder at ``out_dir/snapshots/step-<N>/`` after each of those steps
    (the learning rate still follows the whole run's schedule: points along one run, as
    Pythia's checkpoints are, not separate shorter runs).
    """
    from transformers import AutoTokenizer

    if objective not in ("mlm", "clm", "rtd"):
        raise LmforgeError(f"unknown objective {objective!r}; choose mlm, rtd or clm")
    if max_steps is None and max_tokens is None and max_minutes is None:
        max_minutes = 10.0
    tokens_dir, out = Path(tokens_dir), Path(out_dir)
    tok_manifest = read_manifest(tokens_dir)
    tokenizer = AutoTokenizer.from_pretrained(
        tokens_dir / tok_manifest.get("tokenizer", "tokenizer")
    )
    make = (
        (lambda s: MLMData(s, tokenizer, seq_len, whole_word_mask))
        if objective in ("mlm", "rtd")
        else (lambda s: CLMData(s, tokenizer, seq_len))
    )
    train = make(read_split(tokens_dir, "train"))
    val = (
        make(read_split(tokens_dir, "validation"))
        if "validation" in tok_manifest.get("splits", {})
        else None
    )
    val_batches = val.epoch_batches(batch_size, seed, 0)[:eval_batches] if val is not None else []

    rank, world, device = _distributed()
    master = rank == 0
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)
    vocab = max(len(tokenizer), int(tok_manifest.get("vocab_size", 0)))
    ids = {
        "pad_token_id": tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id
    }
    if objective == "clm":
        ids |= {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(seed)  # the same initial weights on every rank
    model = (
        load_model(objective, init)
        if init
        else build_model(objective, preset, vocab, seq_len, **ids)
    )
    torch.manual_seed(seed + rank)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    if getattr(model.config, "max_position_embeddings", seq_len) < seq_len:
        raise LmforgeError(
            f"--seq-len {seq_len} exceeds the model's {model.config.max_position_embeddings} positions"
        )
    model.to(device).train()
    choice = [choose_dtype(device, dtype) if master else None]
    if world > 1:
        dist.broadcast_object_list(choice, src=0)
    dtype_name, dtype_why = choice[0]
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if dtype_name == "bf16" else nullcontext()
    )
    peak = matmul_peak(device, dtype_name) if master else 1.0
    flops_per_token = train_flops_per_token(model.config, objective, seq_len)
    net = objective_module(objective, model).to(device)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    # the objective module holds everything that trains (RTD: the generator too)
    optimizer = _optimizer(net.module if world > 1 else net, lr, weight_decay, device)
    n_params = sum(p.numel() for p in model.parameters())

    step = tokens = epoch = pos = 0
    elapsed = 0.0
    if resume:
        state = load_checkpoint(out)
        model.load_state_dict(state["model"])
        if "generator" in state:
            (net.module if world > 1 else net).generator.load_state_dict(state["generator"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens, elapsed, epoch, pos = (
            state[k] for k in ("step", "tokens", "elapsed", "epoch", "pos")
        )
        set_rng_state(state["rng"][rank] if len(state["rng"]) == world else state["rng"][0])
    log = RunLog(out, master, resume_step=step if resume else None, progress=progress)
    log.start(
        f"{objective} {init or preset}: {n_params / 1e6:.2f}M params, {dtype_name} ({dtype_why}), {world} process(es), {len(train)} sequences"
    )

    # ---- the loop -------------------------------------------------------------------------
    def epoch_slice(e):
        all_batches = train.epoch_batches(batch_size, seed, e)
        return all_batches[rank : len(all_batches) // world * world : world]

    batches, metrics = epoch_slice(epoch), {}
    start, window_tokens, window_time = time.perf_counter() - elapsed, 0.0, 0.0
    # a run resumed from a checkpoint that already spent its budget trains no further step
    spent = (
        (max_steps is not None and step >= max_steps)
        or (max_tokens is not None and tokens >= max_tokens)
        or (max_minutes is not None and elapsed >= 60 * max_minutes)
    )
    if spent and val_batches:
        metrics = evaluate(net, val, val_batches, seed, autocast, device, world, rank)
    while not spent:
        t0, loss_sum, n_tokens = time.perf_counter(), 0.0, 0
        for micro in range(grad_accum):
            if pos >= len(batches):
                epoch, pos = epoch + 1, 0
                batches = epoch_slice(epoch)
            b = train.batch(
                batches[pos], np.random.default_rng([seed, 1, epoch, pos * world + rank])
            )
            b, pos = {k: v.to(device) for k, v in b.items()}, pos + 1
            sync = net.no_sync() if world > 1 and micro < grad_accum - 1 else nullcontext()
            with sync:
                with autocast:
                    loss, _, _ = net(**b)
                (loss / grad_accum).backward()
            loss_sum, n_tokens = (
                loss_sum + loss.item() / grad_accum,
                n_tokens + int(b["attention_mask"].sum()),
            )
        elapsed = time.perf_counter() - start
        progress_frac = max(
            step / max_steps if max_steps else 0,
            tokens / max_tokens if max_tokens else 0,
            elapsed / (60 * max_minutes) if max_minutes else 0,
        )
        lr_now = lr_at(step, progress_frac, lr, warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        torch.nn.utils.clip_grad_norm_(optimizer_params(optimizer), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_tokens, loss_sum, time_up = _reduce(
            [n_tokens, loss_sum, float(max_minutes is not None and elapsed >= 60 * max_minutes)],
            device,
            world,
        )
        tokens += int(step_tokens)
        window_tokens, window_time = (
            window_tokens + step_tokens,
            window_time + time.perf_counter() - t0,
        )
        done = (
            (max_steps is not None and step >= max_steps)
            or (max_tokens is not None and tokens >= max_tokens)
            or time_up > 0
        )
        if step % log_every == 0 or step % eval_every == 0 or done:
            tps = window_tokens / max(window_time, 1e-9)
            metrics = {
                "step": step,
                "tokens": tokens,
                "train_loss": loss_sum / world,
                "lr": lr_now,
                "tokens_per_s": tps,
                "mfu": tps * flops_per_token / peak,
            }
            if val_batches and (step % eval_every == 0 or done):
                metrics |= evaluate(net, val, val_batches, seed, autocast, device, world, rank)
            log.row(
                metrics | {"elapsed_s": time.perf_counter() - start},
                progress_frac if not done else 1.0,
            )
            window_tokens = window_time = 0.0
        if interrupt_at is not None and step >= interrupt_at:
            log.close()
            return {"interrupted_at": step}
        if step % save_every == 0 or done:
            rngs = [None] * world
            if world > 1:
                dist.all_gather_object(rngs, rng_state())
            else:
                rngs = [rng_state()]
            if master:
                extra = (
                    {"generator": (net.module if world > 1 else net).generator.state_dict()}
                    if objective == "rtd"
                    else {}
                )
                save_checkpoint(
                    out,
                    extra
                    | {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "tokens": tokens,
                        "elapsed": time.perf_counter() - start,
                        "epoch": epoch,
                        "pos": pos,
                        "rng": rngs,
                    },
                )
        if master and step in snapshot_steps:
            _save_folder(model, tokenizer, out / "snapshots" / f"step-{step}")
        if done:
            break
    # ---- the output folder ----------------------------------------------------------------
    seconds = time.perf_counter() - start
    manifest = {
        "objective": objective,
        "preset": None if init else preset,
        "init": str(init) if init else None,
        "params": n_params,
        "preset_params": None if init else param_count(objective, preset, vocab, seq_len),
        "tokens_dir": str(tokens_dir),
        "tokens_seen": tokens,
        "steps": step,
        "epochs": round(tokens / train.tokens_per_epoch, 3),
        "final_val_loss": metrics.get("val_loss"),
        "final_val_ppl": metrics.get("val_ppl"),
        "final_val_acc": metrics.get("val_acc"),
        "dtype": dtype_name,
        "dtype_reason": dtype_why,
        "device": str(device),
        "world_size": world,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "seq_len": seq_len,
        "lr": lr,
        "warmup_steps": warmup_steps,
        "seed": seed,
        "whole_word_mask": whole_word_mask,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
        "peak_flops": peak,
        "flops_per_token": flops_per_token,
    }
    if master:
        _save_folder(model, tokenizer, out)
        (out / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    log.close(manifest)
    if world > 1:
        dist.barrier()
    return manifest
