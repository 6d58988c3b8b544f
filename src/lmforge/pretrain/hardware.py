"""Measure, don't assume: matmul peaks per dtype, the training dtype, and FLOPs per token.

The peak probe times square matmuls for about half a second per dtype and caches the result
in ``~/.cache/lmforge/matmul_peak.json`` (keyed by device, thread count and torch version),
so MFU is reported against what this machine actually reaches.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

CACHE = (
    Path(os.environ.get("LMFORGE_CACHE", Path.home() / ".cache" / "lmforge")) / "matmul_peak.json"
)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def device_key(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()}threads"


def _time_matmul(dtype: torch.dtype, device: torch.device, n: int, seconds: float) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm up
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
        sync()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def matmul_peak(device: torch.device, dtype: str, refresh: bool = False) -> float:
    """Measured matmul FLOP/s for ``dtype`` ('fp32' | 'bf16') on ``device``, cached."""
    key = f"{device_key(device)}|{dtype}|torch{torch.__version__}"
    cache = {}
    if CACHE.is_file():
        try:
            cache = json.loads(CACHE.read_text())
        except (OSError, ValueError):
            cache = {}
    if key in cache and not refresh:
        return float(cache[key])
    n = 4096 if device.type == "cuda" else 1024
    flops = _time_matmul(DTYPES[dtype], device, n, seconds=0.5)
    cache[key] = flops
    try:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, CACHE)
    except OSError:
        pass
    return flops


def choose_dtype(device: torch.device, requested: str = "auto") -> tuple[str, str]:
    """('bf16' | 'fp32', why). 'auto' picks bf16 on CPU only if the probe shows it >= 1.5x faster."""
    if requested in ("fp32", "bf16"):
        return requested, "requested"
    if requested != "auto":
        from lmforge.errors import LmforgeError

        raise LmforgeError(f"--dtype {requested!r}: choose auto, bf16 or fp32")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "GPU supports bf16"
        return "fp32", "GPU without bf16"
    fp32, bf16 = matmul_peak(device, "fp32"), matmul_peak(device, "bf16")
    ratio = bf16 / fp32
    if ratio >= 1.5:
        return (
            "bf16",
            f"bf16 matmul {ratio:.1f}x faster than fp32 ({bf16 / 1e9:.0f} vs {fp32 / 1e9:.0f} GFLOP/s)",
        )
    return (
        "fp32",
        f"bf16 matmul only {ratio:.1f}x fp32 ({bf16 / 1e9:.0f} vs {fp32 / 1e9:.0f} GFLOP/s)",
    )


def train_flops_per_token(config, objective: str, seq_len: int, mask_rate: float = 0.15) -> float:
    """Matmul FLOPs of one training token (forward + backward = 3x forward).

    6 x (weights of the transformer blocks) + 12 x layers x width x seq (attention scores and
    values) + the output head: for MLM only on the masked fraction (we compute it there only).
    """
    h, L, V = config.hidden_size, config.num_hidden_layers, config.vocab_size
    f = config.intermediate_size
    if objective == "rtd":  # discriminator on every token + a 1/4-width generator (~1/16 FLOPs)
        block = (4 * h * h + 2 * h * f) * (1 + 1 / 16)
        head = h * h + (h * h / 4 + h * V) * mask_rate
    elif objective == "mlm":
        block = 4 * h * h + 2 * h * f
        head = (h * h + h * V) * mask_rate
    else:
        block = 4 * h * h + 3 * h * f
        head = h * V
    return 6 * (L * block + head) + 12 * L * h * seq_len
