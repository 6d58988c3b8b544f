"""What a pretraining run shows and keeps: a rich progress bar, TensorBoard scalars and
``log.jsonl`` (one JSON row per logged step) in the output folder. Only rank 0 writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

FIELDS = (
    "step",
    "tokens",
    "train_loss",
    "val_loss",
    "val_ppl",
    "val_acc",
    "lr",
    "tokens_per_s",
    "mfu",
    "elapsed_s",
)


def read_log(out_dir: str | Path) -> list[dict]:
    path = Path(out_dir) / "log.jsonl"
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


class RunLog:
    def __init__(
        self, out_dir: Path, master: bool, resume_step: int | None = None, progress: bool = True
    ):
        self.master, self.out = master, Path(out_dir)
        self.console = Console(stderr=True)
        self.bar = self.writer = self.file = None
        if not master:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "log.jsonl"
        kept = (
            [r for r in read_log(self.out) if r["step"] <= resume_step]
            if resume_step is not None
            else []
        )
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self.file = path.open("a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=resume_step)
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            self.writer = None
        if progress:
            self.bar = Progress(
                TextColumn("[bold]pretrain"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task("pretrain", total=1000, info="")
            self.bar.start()

    def start(self, line: str) -> None:
        if self.master:
            self.console.print(line, highlight=False)

    def row(self, metrics: dict, progress: float) -> None:
        if not self.master:
            return
        row = {k: metrics.get(k) for k in FIELDS}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("step", "tokens") and v is not None:
                    self.writer.add_scalar(k, v, row["step"])
        if self.bar is not None:
            val = (
                f" val {row['val_loss']:.3f} acc {row['val_acc']:.3f}"
                if row["val_loss"] is not None
                else ""
            )
            info = f"step {row['step']} loss {row['train_loss']:.3f}{val} {row['tokens_per_s']:,.0f} tok/s MFU {100 * row['mfu']:.1f}%"
            self.bar.update(self.task, completed=int(1000 * min(progress, 1.0)), info=info)

    def close(self, manifest: dict | None = None) -> None:
        if not self.master:
            return
        if self.bar is not None:
            self.bar.stop()
        if self.writer is not None:
            self.writer.close()
        self.file.close()
        if manifest:
            loss = manifest["final_val_loss"]
            val = (
                f"val loss {loss:.3f} (ppl {math.exp(min(loss, 50)):.1f}, acc {manifest['final_val_acc']:.3f}), "
                if loss is not None
                else ""
            )
            self.console.print(
                f"done: {manifest['steps']} steps, {manifest['tokens_seen']:,} tokens ({manifest['epochs']} epochs), {val}"
                f"{manifest['tokens_per_s']:,.0f} tok/s, {manifest['seconds']:.0f} s, {manifest['dtype']} -> {self.out}",
                highlight=False,
            )
