"""What the benchmarks that time HF ``Trainer`` share: its arguments for a quiet, timed CPU run
and a clock on every step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def quiet_trainer_args(output_dir: str | Path, **overrides: Any):
    """``TrainingArguments`` for a timed run on the CPU: no logging, saving, reporting, progress
    bar or data-loader workers, weight decay 0.01, seed 0; ``overrides`` (batch, steps, lr,
    warmup, bf16 ...) on top."""
    from transformers import TrainingArguments

    settings = {
        "output_dir": str(output_dir),
        "weight_decay": 0.01,
        "use_cpu": True,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 10**9,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "seed": 0,
    }
    return TrainingArguments(**(settings | overrides))


def step_clock():
    """(callback, marks): the callback stores ``time.perf_counter()`` in ``marks[step]`` at the
    end of every training step, so a side can time steps after its warm-up."""
    from transformers import TrainerCallback

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks[state.global_step] = time.perf_counter()

    return Clock(), marks
