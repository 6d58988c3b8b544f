"""The pretraining loop (MLM or CLM), read as nanoGPT's train.py reads.

``pretrain(tokens_dir, out_dir, objective, preset, **options)`` -- options are the fields of
:class:`PretrainConfig` -- builds or loads the model, then runs: micro-batches (gradient
accumulation, DDP ``no_sync`` between them) -> clip -> AdamW step at the schedule's learning
rate -> log / validate / checkpoint -> stop on the first budget hit (steps, tokens or minutes).
Under ``torchrun`` every rank takes a disjoint slice of each epoch's batches; only rank 0
writes. Device, dtype, optimizer groups, schedule and checkpoints are :mod:`lmforge.training`'s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from lmforge.errors import LmforgeError
from lmforge.models.presets import build_model, load_model, param_count
from lmforge.pretrain.data import CLMData, MLMData, read_manifest, read_split
from lmforge.pretrain.hardware import train_flops_per_token
from lmforge.pretrain.objective import objective_module
from lmforge.pretrain.report import RunLog
from lmforge.training import Schedule, adamw, autocast, choose_dtype, param_groups, set_lr
from lmforge.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from lmforge.training.device import matmul_peak, raise_peak, resolve_device


@dataclass
class PretrainConfig:
    """Every pretraining setting, as plain data (the recipe's ``pretrain:`` section)."""

    objective: str = "mlm"  # mlm | rtd | clm
    preset: str = "tiny"  # model size when not starting from ``init``
    init: str | Path | None = None  # a model folder to continue from
    # budget: the first one hit stops the run; none given -> 10 minutes
    max_steps: int | None = None
    max_minutes: float | None = None
    max_tokens: int | None = None
    # data and optimisation
    batch_size: int = 64
    seq_len: int = 128
    lr: float = 1e-3
    warmup_steps: int = 50
    schedule: str = "cosine"  # linear | cosine | constant | one-cycle
    min_lr_ratio: float = 0.1
    grad_accum: int = 1
    weight_decay: float = 0.01
    clip: float = 1.0
    whole_word_mask: bool = False
    dtype: str = "auto"  # auto | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    # logging, validation, checkpoints
    eval_every: int = 100
    eval_batches: int = 20
    save_every: int = 200
    log_every: int = 10
    snapshot_steps: list[int] | tuple[int, ...] = ()
    resume: bool = False
    progress: bool = True
    interrupt_at: int | None = None  # stop after this step without saving (tests of resume)

    def budget_progress(self, step: int, tokens: int, elapsed: float) -> float:
        """How much of the budget is used (0..1+): the largest of steps, tokens and minutes."""
        return max(
            step / self.max_steps if self.max_steps else 0,
            tokens / self.max_tokens if self.max_tokens else 0,
            elapsed / (60 * self.max_minutes) if self.max_minutes else 0,
        )

    def spent(self, step: int, tokens: int, time_up: bool) -> bool:
        return (
            (self.max_steps is not None and step >= self.max_steps)
            or (self.max_tokens is not None and tokens >= self.max_tokens)
            or time_up
        )


def _distributed(device: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device(f"cuda:{local}")
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def _reduce(values: list[float], device, world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(net, data, batches, seed: int, autocast, device, world: int, rank: int) -> dict:
    """Validation loss, perplexity and accuracy (masked tokens for MLM, next token for CLM)."""
    net.eval()
    loss_sum = n_sum = correct_sum = 0.0
    for i in range(rank, len(batches), world):
        rng = np.random.default_rng([seed, 2, i])
        b = {k: v.to(device) for k, v in data.batch(batches[i], rng).items()}
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


def _load_data(cfg: PretrainConfig, tokens_dir: Path):
    """(tokenizer, train data, validation data or None, the fixed validation batches)."""
    from transformers import AutoTokenizer

    manifest = read_manifest(tokens_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokens_dir / manifest.get("tokenizer", "tokenizer"))
    if cfg.objective in ("mlm", "rtd"):
        make = lambda s: MLMData(s, tokenizer, cfg.seq_len, cfg.whole_word_mask)  # noqa: E731
    else:
        make = lambda s: CLMData(s, tokenizer, cfg.seq_len)  # noqa: E731
    train = make(read_split(tokens_dir, "train"))
    val = (
        make(read_split(tokens_dir, "validation"))
        if "validation" in manifest.get("splits", {})
        else None
    )
    val_batches = val.epoch_batches(cfg.batch_size, cfg.seed, 0)[: cfg.eval_batches] if val else []
    vocab = max(len(tokenizer), int(manifest.get("vocab_size", 0)))
    return tokenizer, train, val, val_batches, vocab


def _build(cfg: PretrainConfig, tokenizer, vocab: int, rank: int):
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = {"pad_token_id": pad}
    if cfg.objective == "clm":
        ids |= {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if cfg.init:
        model = load_model(cfg.objective, cfg.init)
    else:
        model = build_model(cfg.objective, cfg.preset, vocab, cfg.seq_len, **ids)
    torch.manual_seed(cfg.seed + rank)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    positions = getattr(model.config, "max_position_embeddings", cfg.seq_len)
    if positions < cfg.seq_len:
        raise LmforgeError(f"--seq-len {cfg.seq_len} exceeds the model's {positions} positions")
    return model


def pretrain(
    tokens_dir: str | Path,
    out_dir: str | Path,
    objective: str | None = None,
    preset: str | None = None,
    *,
    config: PretrainConfig | None = None,
    **options,
) -> dict:
    """Pretrain a model on a tokens folder; write a ``save_pretrained`` folder to ``out_dir``.

    Settings: ``config`` and/or keyword ``options`` (any :class:`PretrainConfig` field). Returns
    the run manifest (also ``out_dir/manifest.json``). ``snapshot_steps``: also write a loadable
    folder at ``out_dir/snapshots/step-<N>/`` after those steps (points along one run, as
    Pythia's checkpoints are, not separate shorter runs).
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(PretrainConfig)})
    if unknown:
        raise LmforgeError(f"pretrain: unknown option(s) {unknown}")
    cfg = dataclasses.replace(config or PretrainConfig(), **options)
    cfg.objective, cfg.preset = objective or cfg.objective, preset or cfg.preset
    if cfg.objective not in ("mlm", "rtd", "clm"):
        raise LmforgeError(f"unknown objective {cfg.objective!r}; choose mlm, rtd or clm")
    if cfg.max_steps is None and cfg.max_tokens is None and cfg.max_minutes is None:
        cfg.max_minutes = 10.0
    tokens_dir, out = Path(tokens_dir), Path(out_dir)
    tokenizer, train, val, val_batches, vocab = _load_data(cfg, tokens_dir)

    # ---- model, device, precision, optimizer -----------------------------------------------
    rank, world, device = _distributed(cfg.device)
    master = rank == 0
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    model = _build(cfg, tokenizer, vocab, rank)
    model.to(device).train()
    choice = [choose_dtype(device, cfg.dtype) if master else None]
    if world > 1:
        dist.broadcast_object_list(choice, src=0)
    dtype_name, dtype_why = choice[0]
    amp = autocast(device, dtype_name)
    peak = matmul_peak(device, dtype_name) if master else 1.0
    flops_per_token = train_flops_per_token(model.config, cfg.objective, cfg.seq_len)
    net = objective_module(cfg.objective, model).to(device)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
    # the objective module holds everything that trains (RTD: the generator too)
    groups = param_groups(net.module if world > 1 else net, cfg.weight_decay)
    optimizer = adamw(groups, cfg.lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    schedule = Schedule(cfg.schedule, cfg.warmup_steps, cfg.min_lr_ratio)
    n_params = sum(p.numel() for p in model.parameters())

    # ---- resume ----------------------------------------------------------------------------
    step = tokens = epoch = pos = 0
    elapsed = 0.0
    if cfg.resume:
        state = load_checkpoint(out)
        model.load_state_dict(state["model"])
        if "generator" in state:
            (net.module if world > 1 else net).generator.load_state_dict(state["generator"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens, elapsed, epoch, pos = (
            state[k] for k in ("step", "tokens", "elapsed", "epoch", "pos")
        )
        set_rng_state(state["rng"][rank] if len(state["rng"]) == world else state["rng"][0])
    log = RunLog(out, master, resume_step=step if cfg.resume else None, progress=cfg.progress)
    log.start(
        f"{cfg.objective} {cfg.init or cfg.preset}: {n_params / 1e6:.2f}M params, {dtype_name} "
        f"({dtype_why}), {device.type}, {world} process(es), {len(train)} sequences"
    )

    def epoch_slice(e):
        all_batches = train.epoch_batches(cfg.batch_size, cfg.seed, e)
        return all_batches[rank : len(all_batches) // world * world : world]

    def checkpoint():
        rngs = [None] * world
        if world > 1:
            dist.all_gather_object(rngs, rng_state())
        else:
            rngs = [rng_state()]
        if master:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rngs}
            if cfg.objective == "rtd":  # the generator trains too; only the checkpoint keeps it
                state["generator"] = (net.module if world > 1 else net).generator.state_dict()
            state |= {"step": step, "tokens": tokens, "epoch": epoch, "pos": pos}
            save_checkpoint(out, state | {"elapsed": time.perf_counter() - start})

    # ---- the loop --------------------------------------------------------------------------
    batches, metrics = epoch_slice(epoch), {}
    start, window_tokens, window_time = time.perf_counter() - elapsed, 0.0, 0.0
    # a run resumed from a checkpoint that already spent its budget trains no further step
    done = cfg.spent(step, tokens, cfg.max_minutes is not None and elapsed >= 60 * cfg.max_minutes)
    if done and val_batches:
        metrics = evaluate(net, val, val_batches, cfg.seed, amp, device, world, rank)
    while not done:
        t0, loss_sum, n_tokens = time.perf_counter(), torch.zeros((), device=device), 0
        for micro in range(cfg.grad_accum):
            if pos >= len(batches):
                epoch, pos = epoch + 1, 0
                batches = epoch_slice(epoch)
            rng = np.random.default_rng([cfg.seed, 1, epoch, pos * world + rank])
            b, pos = {k: v.to(device) for k, v in train.batch(batches[pos], rng).items()}, pos + 1
            last = micro == cfg.grad_accum - 1
            with net.no_sync() if world > 1 and not last else nullcontext(), amp:
                loss, _, _ = net(**b)
            (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach() / cfg.grad_accum
            n_tokens += int(b["attention_mask"].sum())
        elapsed = time.perf_counter() - start
        progress = cfg.budget_progress(step, tokens, elapsed)
        lr_now = set_lr(optimizer, schedule.factor(step, progress))
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        time_up = float(cfg.max_minutes is not None and elapsed >= 60 * cfg.max_minutes)
        step_tokens, loss_now, time_up = _reduce(
            [n_tokens, float(loss_sum), time_up], device, world
        )
        tokens += int(step_tokens)
        window_tokens, window_time = (
            window_tokens + step_tokens,
            window_time + time.perf_counter() - t0,
        )
        done = cfg.spent(step, tokens, time_up > 0)
        # ---- log / validate / checkpoint / snapshot ----------------------------------------
        if step % cfg.log_every == 0 or step % cfg.eval_every == 0 or done:
            tps = window_tokens / max(window_time, 1e-9)
            if master and tps * flops_per_token > peak:  # the peak probe ran on a busy machine
                peak = raise_peak(device, dtype_name, tps * flops_per_token)
            metrics = {"step": step, "tokens": tokens, "train_loss": loss_now / world, "lr": lr_now}
            metrics |= {"tokens_per_s": tps, "mfu": tps * flops_per_token / peak}
            if val_batches and (step % cfg.eval_every == 0 or done):
                metrics |= evaluate(net, val, val_batches, cfg.seed, amp, device, world, rank)
            log.row(metrics | {"elapsed_s": time.perf_counter() - start}, 1.0 if done else progress)
            window_tokens = window_time = 0.0
        if cfg.interrupt_at is not None and step >= cfg.interrupt_at:
            log.close()
            return {"interrupted_at": step}
        if step % cfg.save_every == 0 or done:
            checkpoint()
        if master and step in cfg.snapshot_steps:
            _save_folder(model, tokenizer, out / "snapshots" / f"step-{step}")

    # ---- the output folder -----------------------------------------------------------------
    seconds = time.perf_counter() - start
    manifest = {
        "objective": cfg.objective,
        "preset": None if cfg.init else cfg.preset,
        "init": str(cfg.init) if cfg.init else None,
        "params": n_params,
        "preset_params": None
        if cfg.init
        else param_count(cfg.objective, cfg.preset, vocab, cfg.seq_len),
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
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "seq_len": cfg.seq_len,
        "lr": cfg.lr,
        "warmup_steps": cfg.warmup_steps,
        "schedule": cfg.schedule,
        "seed": cfg.seed,
        "whole_word_mask": cfg.whole_word_mask,
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
