"""Length-bucketed batches and padding, shared by pretraining and every classifier.

:func:`bucketed_batches`: shuffle, sort by length inside pools of ``pool`` batches, cut the
pools into batches, shuffle the batches. Each batch holds near-equal lengths (little compute
goes to padding) while the epoch stays random. :func:`pad_batch` pads one batch to its longest
row rounded up to a multiple of ``multiple``: on CPU, oneDNN builds (and caches) kernels per
input shape, so a few distinct padded lengths are much faster than one per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def padded_length(n: int, multiple: int = 1) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (1: unchanged)."""
    m = max(1, int(multiple))
    return -(-int(n) // m) * m


def bucketed_batches(
    lengths, batch_size: int, rng: np.random.Generator | None, pool: int = 50
) -> list[np.ndarray]:
    """Row ids in batches of similar length; ``rng=None`` keeps input order (no shuffling)."""
    lengths = np.asarray(lengths)
    bs = max(1, int(batch_size))
    order = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    batches = []
    for i in range(0, len(order), bs * pool):
        chunk = order[i : i + bs * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[j : j + bs] for j in range(0, len(chunk), bs)]
    if rng is not None:
        batches = [batches[k] for k in rng.permutation(len(batches))]
    return batches


def sorted_batches(lengths, batch_size: int) -> list[np.ndarray]:
    """Row ids sorted by length, in batches (inference: least padding, order restored later)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    bs = max(1, int(batch_size))
    return [order[i : i + bs] for i in range(0, len(order), bs)]


def pad_batch(
    encoded, idx, pad_id: int, multiple: int = 1, max_width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(ids [rows, width], lengths [rows]) of rows ``idx`` of ``encoded`` padded with ``pad_id``;
    the width is rounded up to ``multiple`` but not past ``max_width`` (a model's positions)."""
    lengths = np.asarray([len(encoded[i]) for i in idx], dtype=np.int64)
    longest = int(lengths.max()) if len(lengths) else 1
    width = padded_length(longest, multiple)
    if max_width is not None:
        width = max(longest, min(width, int(max_width)))
    ids = np.full((len(idx), width), int(pad_id), dtype=np.int64)
    for row, i in enumerate(idx):
        ids[row, : lengths[row]] = encoded[i]
    return ids, lengths


@dataclass
class Batch:
    """One batch: row ids into the data (``idx``), the model inputs, real (non-pad) tokens."""

    idx: np.ndarray
    inputs: dict[str, torch.Tensor]
    tokens: int

    def __len__(self) -> int:
        return len(self.idx)

    def to(self, device: torch.device) -> Batch:
        if device.type == "cpu":
            return self
        moved = {k: v.to(device, non_blocking=True) for k, v in self.inputs.items()}
        return Batch(self.idx, moved, self.tokens)
