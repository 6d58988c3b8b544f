"""Length-bucketed batches and padding."""

from __future__ import annotations

import numpy as np

from lmforge.training import bucketed_batches, pad_batch, padded_length


def test_without_shuffle_every_id_is_kept_in_length_order():
    lengths = np.array([5, 1, 4, 2, 3])
    batches = bucketed_batches(lengths, 2, rng=None)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 2], [0]]


def test_buckets_hold_similar_lengths_and_are_deterministic(sample):
    lengths = np.array([len(t) for t in sample.train_texts])
    a = bucketed_batches(lengths, 16, np.random.default_rng(3))
    b = bucketed_batches(lengths, 16, np.random.default_rng(3))
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert sorted(np.concatenate(a).tolist()) == list(range(len(lengths)))  # each id once
    pad = sum(lengths[i].max() * len(i) - lengths[i].sum() for i in a)
    rng = np.random.default_rng(0)
    random = np.array_split(rng.permutation(len(lengths)), len(a))
    pad_random = sum(lengths[i].max() * len(i) - lengths[i].sum() for i in random)
    assert pad < 0.5 * pad_random
    c = bucketed_batches(lengths, 16, np.random.default_rng(4))
    assert not all(len(x) == len(y) and (x == y).all() for x, y in zip(a, c, strict=False))


def test_padding_rounds_up_to_a_multiple():
    encoded = [np.arange(1, 4), np.arange(1, 19), np.arange(1, 2)]
    ids, lengths = pad_batch(encoded, [0, 2], pad_id=0, multiple=16)
    assert ids.shape == (2, 16) and lengths.tolist() == [3, 1]
    assert ids[0, :3].tolist() == [1, 2, 3] and (ids[0, 3:] == 0).all()
    assert pad_batch(encoded, [1], 0, 16)[0].shape == (1, 32)
    assert pad_batch(encoded, [0, 1], 0, 1)[0].shape == (2, 18)
    assert [padded_length(n, 32) for n in (1, 32, 33)] == [32, 32, 64]
