"""Training checkpoints: everything needed to continue a run exactly, written atomically.

``OUT/checkpoint/state.pt`` holds the model and optimizer state dicts, the trainer's position
(pretraining: step, tokens seen, elapsed seconds, epoch and batch; :func:`~lmforge.training.fit`:
steps, epoch history, early-stopping state, the data order's generator) and the RNG states of
python, numpy and torch (of every rank). It is written to a temporary name and renamed, so a
crash never leaves a half-written checkpoint. Loading uses ``torch.load(weights_only=True)``:
only tensors and plain containers, never arbitrary pickles.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from lmforge.errors import LmforgeError

NAME = "state.pt"


def rng_state() -> dict:
    """The RNG states of this process as tensors and plain values (weights_only-loadable)."""
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy_key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(np_state["state"]["pos"]),
        "numpy_gauss": [int(np_state["has_gauss"]), float(np_state["gauss"])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(
        (
            "MT19937",
            state["numpy_key"].numpy().astype(np.uint32),
            state["numpy_pos"],
            *state["numpy_gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: str | Path, state: dict) -> Path:
    folder = Path(out_dir) / "checkpoint"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{NAME}.tmp"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / NAME)
    return folder / NAME


def checkpoint_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoint" / NAME


def load_checkpoint(out_dir: str | Path) -> dict:
    path = checkpoint_path(out_dir)
    if not path.is_file():
        raise LmforgeError(f"--resume: no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)
