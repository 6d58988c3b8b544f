"""Device and dtype: where a trainer runs and in which precision — measured, not assumed.

:func:`resolve_device` turns ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a ``torch.device``
(``auto``: CUDA when present, else CPU). :func:`choose_dtype` picks bf16 or fp32: on a GPU,
bf16 where the GPU supports it; on a CPU, bf16 where the CPU has AMX (in /proc/cpuinfo: measured
~5x fp32 there; AVX512-BF16 alone measured 0.6x), so the choice, and the
model, do not depend on how loaded the machine was when it started. Only where the flags cannot
be read does a matmul probe decide (bf16 if >= 1.5x faster). The probe times square matmuls for about
half a second per dtype and caches the result in ``~/.cache/lmforge/matmul_peak.json`` (keyed
by device, thread count and torch version), so MFU is reported against what this machine
actually reaches. :func:`autocast` is the one mixed-precision context every trainer uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import torch

from lmforge.errors import LmforgeError

CACHE = (
    Path(os.environ.get("LMFORGE_CACHE", Path.home() / ".cache" / "lmforge")) / "matmul_peak.json"
)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a one-line error."""
    if isinstance(device, torch.device):
        return device
    name = str(device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise LmforgeError(f"device={device!r}: no CUDA GPU is visible to torch")
        return torch.device(name)
    raise LmforgeError(f"device={device!r}: choose auto, cpu or cuda")


def autocast(device: torch.device | str, dtype: str):
    """bf16 autocast on ``device`` when ``dtype == 'bf16'``, else a no-op context."""
    if dtype == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    # the fastest single product, not the mean: another job on the machine can only slow a
    # product down, so the minimum is the least biased reading of what the hardware does
    start, fastest = time.perf_counter(), float("inf")
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        a @ b
        sync()
        fastest = min(fastest, time.perf_counter() - t0)
    return 2 * n**3 / fastest


def _read_cache() -> dict:
    if CACHE.is_file():
        try:
            return json.loads(CACHE.read_text())
        except (OSError, ValueError):
            return {}
    return {}


def _write_cache(cache: dict) -> None:
    try:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, CACHE)
    except OSError:
        pass


def _peak_key(device: torch.device, dtype: str) -> str:
    return f"{device_key(device)}|{dtype}|torch{torch.__version__}"


def matmul_peak(device: torch.device, dtype: str, refresh: bool = False) -> float:
    """Measured matmul FLOP/s for ``dtype`` ('fp32' | 'bf16') on ``device``, cached."""
    key, cache = _peak_key(device, dtype), _read_cache()
    if key in cache and not refresh:
        return float(cache[key])
    n = 4096 if device.type == "cuda" else 1024
    flops = max(_time_matmul(DTYPES[dtype], device, n, seconds=0.5), float(cache.get(key, 0.0)))
    cache[key] = flops
    _write_cache(cache)
    return flops


def raise_peak(device: torch.device, dtype: str, achieved: float) -> float:
    """The peak, raised to ``achieved`` FLOP/s when a trainer went faster than the cached probe
    (the probe ran while the machine was busy): MFU then never reads above 100 %, and later runs
    start from the better figure."""
    key, cache = _peak_key(device, dtype), _read_cache()
    peak = max(float(cache.get(key, 0.0)), achieved)
    if peak > float(cache.get(key, 0.0)):
        cache[key] = peak
        _write_cache(cache)
    return peak


def cpu_bf16_units() -> str | None:
    """'AMX' when /proc/cpuinfo lists the AMX bf16 tile unit, '' when it does not; None where the
    flags cannot be read (then a timing probe decides)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None
            )
    except OSError:
        return None
    if flags is None:
        return None
    # only AMX makes bf16 matmuls faster than fp32 in PyTorch's CPU kernels: measured on this
    # project's machines, AMX 387 vs 72 GFLOP/s (FINDINGS), AVX512-BF16 alone 134 vs 214
    return "AMX" if "amx_bf16" in flags else ""


def choose_dtype(device: torch.device | str, requested: str = "auto") -> tuple[str, str]:
    """('bf16' | 'fp32', why). 'auto' picks bf16 on CPU only if the probe shows it >= 1.5x faster."""
    device = torch.device(device)
    if requested in ("fp32", "bf16"):
        return requested, "requested"
    if requested != "auto":
        raise LmforgeError(f"--dtype {requested!r}: choose auto, bf16 or fp32")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "GPU supports bf16"
        return "fp32", "GPU without bf16"
    native = cpu_bf16_units()
    if native is not None:  # decided by the hardware, not by how busy the machine is right now
        return (
            ("bf16", f"CPU has {native} (bf16 matrix units)")
            if native
            else (
                "fp32",
                "CPU without AMX (bf16 matmuls are not faster than fp32 there)",
            )
        )
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
