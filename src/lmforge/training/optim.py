"""AdamW with parameter groups, and learning-rate schedules.

:func:`param_groups`: weight decay on matrices (linear, convolution and embedding weights),
none on vectors (biases, LayerNorm weights) -- the BERT / nanoGPT rule ``p.ndim < 2``.
``lr_scale(name) -> float`` multiplies a parameter's learning rate (layer-wise lr decay).
Frozen parameters (``requires_grad=False``) are left out.

:class:`Schedule`: linear warmup over ``warmup_steps``, then ``linear`` / ``cosine`` decay to
``min_ratio`` of the peak, ``constant``, or ``one-cycle`` (warmup from peak / 25, then linear
to ``min_ratio``). The decay follows ``progress`` (0..1): the fraction of the run after warmup
(fine-tuning), or of a token / step / minute budget (pretraining).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lmforge.errors import LmforgeError

KINDS = ("linear", "cosine", "constant", "one-cycle")


def param_groups(
    model: torch.nn.Module,
    weight_decay: float,
    lr_scale: Callable[[str], float] | None = None,
) -> list[dict]:
    """AdamW groups: decay on ndim >= 2, none on biases / norms; optional per-name lr scale."""
    groups: dict[tuple[bool, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2
        scale = float(lr_scale(name)) if lr_scale is not None else 1.0
        key = (decay, scale)
        if key not in groups:
            groups[key] = {
                "params": [],
                "weight_decay": float(weight_decay) if decay else 0.0,
                "lr_scale": scale,
            }
        groups[key]["params"].append(p)
    # decayed groups first, then by falling scale: the order AdamW's state dict records
    return [groups[k] for k in sorted(groups, key=lambda k: (not k[0], -k[1]))]


def adamw(
    groups: list[dict],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """AdamW over ``groups``; each group's peak lr is ``lr * lr_scale`` (kept as ``base_lr``).

    ``fused=True`` takes torch's fused kernel (one kernel for all parameters) where the device
    and torch build have one, else the multi-tensor ``foreach`` path.
    """
    for g in groups:
        g["base_lr"] = float(lr) * float(g.get("lr_scale", 1.0))
        g["lr"] = g["base_lr"]
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=float(lr), betas=betas, eps=eps, fused=True)
        except (RuntimeError, ValueError):
            return torch.optim.AdamW(groups, lr=float(lr), betas=betas, eps=eps, foreach=True)
    return torch.optim.AdamW(groups, lr=float(lr), betas=betas, eps=eps)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Every group's lr = its ``base_lr`` x ``factor``; returns the first group's lr."""
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
    return optimizer.param_groups[0]["lr"] if optimizer.param_groups else 0.0


@dataclass(frozen=True)
class Schedule:
    """Learning-rate factor (x peak lr) per step: warmup, then decay by ``progress``."""

    kind: str = "linear"
    warmup_steps: int = 0
    min_ratio: float = 0.0
    total_steps: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise LmforgeError(f"schedule {self.kind!r}: choose one of {', '.join(KINDS)}")

    def factor(self, step: int, progress: float | None = None) -> float:
        warmup = int(self.warmup_steps)
        if step < warmup:
            if self.kind == "one-cycle":
                return 1 / 25 + (1 - 1 / 25) * (step + 1) / warmup
            return (step + 1) / warmup
        if self.kind == "constant":
            return 1.0
        if progress is None:
            if self.total_steps is None:
                raise ValueError("Schedule.factor needs progress or total_steps")
            # the share of the decay phase still ahead (1 right after warmup, 0 at the end)
            left = max(0.0, (self.total_steps - step) / max(1, self.total_steps - warmup))
            done = 1.0 - left
        else:
            done = min(max(progress, 0.0), 1.0)
            left = 1.0 - done
        if self.kind == "cosine":
            return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * done))
        return self.min_ratio + (1 - self.min_ratio) * left
