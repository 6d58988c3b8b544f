"""The one epoch loop every torch trainer calls with its own loss.

One step, as in nanoGPT: lr from the schedule -> forward + loss under autocast ->
backward -> clip the global gradient norm of the *trainable* parameters (frozen ones have no
gradient) -> AdamW step. After each epoch: the epoch record (mean loss, seconds, real tokens/s),
an optional validation score with early stopping (the best epoch's weights are put back at the
end), an optional checkpoint, from which a later call resumes at the next epoch with the same
weights, optimizer, data order and RNG state as an uninterrupted run.

No per-step host synchronisation: the loss is summed on the device and read once per epoch.
:func:`record_fits` lets a caller (a test, a profiler) see every ``fit`` that ran.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lmforge.training.batching import Batch
from lmforge.training.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from lmforge.training.device import autocast
from lmforge.training.early_stopping import EarlyStopping
from lmforge.training.optim import Schedule, set_lr

_OBSERVERS: list[Callable[[str, FitResult], None]] = []


@dataclass
class FitResult:
    """What a ``fit`` did: one record per epoch, the best validation score, steps taken."""

    history: list[dict] = field(default_factory=list)
    best_score: float | None = None
    steps: int = 0
    stopped_early: bool = False
    resumed_from_epoch: int | None = None

    @property
    def tokens(self) -> int:
        return int(sum(h.get("tokens", 0) for h in self.history))


@contextlib.contextmanager
def record_fits():
    """Inside the block, every finished ``fit`` appends ``(name, FitResult)`` to the list yielded."""
    calls: list[tuple[str, FitResult]] = []
    observer = lambda name, result: calls.append((name, result))  # noqa: E731
    _OBSERVERS.append(observer)
    try:
        yield calls
    finally:
        _OBSERVERS.remove(observer)


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[Batch], torch.Tensor],
    batches: Callable[[np.random.Generator | None], Iterable[Batch]],
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    schedule: Schedule | None = None,
    clip: float | None = 1.0,
    device: torch.device | str = "cpu",
    dtype: str = "fp32",
    rng: np.random.Generator | None = None,
    evaluate: Callable[[], float] | None = None,
    patience: int | None = None,
    score_name: str = "val_macro_f1",
    checkpoint_dir: str | Path | None = None,
    name: str = "fit",
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train ``model`` for ``epochs`` epochs of ``batches(rng)``, minimising ``loss_fn(batch)``.

    ``evaluate()`` (higher is better) runs after each epoch; with ``patience`` training stops
    after that many epochs without a gain, and the best epoch's weights are restored.
    ``checkpoint_dir``: state saved after each epoch; when it holds a checkpoint, training
    resumes after its epoch. ``on_step(epoch, rows_done)`` / ``on_epoch(record)`` report progress.
    """
    device = torch.device(device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    early = EarlyStopping(patience if patience else 10**9) if evaluate is not None else None
    result = FitResult()
    first_epoch = 0
    if checkpoint_dir is not None and checkpoint_path(checkpoint_dir).is_file():
        first_epoch = _resume(checkpoint_dir, model, optimizer, early, rng, result)
    for epoch in range(first_epoch, int(epochs)):
        model.train()
        start = time.perf_counter()
        total = torch.zeros((), dtype=torch.float64, device=device)
        rows = tokens = 0
        for batch in batches(rng):
            batch = batch.to(device)
            if schedule is not None:
                set_lr(optimizer, schedule.factor(result.steps))
            with autocast(device, dtype):
                loss = loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            result.steps += 1
            total += loss.detach().double() * len(batch)
            rows, tokens = rows + len(batch), tokens + batch.tokens
            if on_step is not None:
                on_step(epoch, rows)
        seconds = time.perf_counter() - start
        record = {
            "epoch": epoch + 1,
            "loss": float(total) / max(1, rows),
            "seconds": seconds,
            "tokens": tokens,
            "tokens_per_s": tokens / seconds if seconds else None,
        }
        stop = False
        if early is not None:
            record[score_name] = float(evaluate())
            stop = early.update(record[score_name], model)
        result.history.append(record)
        if checkpoint_dir is not None:
            _save(checkpoint_dir, model, optimizer, early, rng, result)
        if on_epoch is not None:
            on_epoch(record)
        if stop:
            result.stopped_early = True
            break
    if early is not None:
        early.restore(model)
        result.best_score = early.best_score
    model.eval()
    for observer in list(_OBSERVERS):
        observer(name, result)
    return result


def _save(folder, model, optimizer, early, rng, result: FitResult) -> None:
    save_checkpoint(
        folder,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "early": early.state_dict() if early is not None else None,
            "data_rng": json.dumps(rng.bit_generator.state) if rng is not None else None,
            "rng": rng_state(),
            "steps": result.steps,
            "history": json.dumps(result.history),
        },
    )


def _resume(folder, model, optimizer, early, rng, result: FitResult) -> int:
    state = load_checkpoint(folder)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if early is not None and state["early"] is not None:
        early.load_state_dict(state["early"])
    if rng is not None and state["data_rng"] is not None:
        rng.bit_generator.state = json.loads(state["data_rng"])
    set_rng_state(state["rng"])
    result.steps = int(state["steps"])
    result.history = json.loads(state["history"])
    result.resumed_from_epoch = len(result.history)
    return len(result.history)
