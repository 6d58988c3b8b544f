"""The transformer classifier on a small real sample, from a tiny BERT folder made here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from lmforge.classify.estimator import MODEL_JSON, load_model, make_model
from lmforge.classify.metrics import classification_metrics
from lmforge.errors import LmforgeError

# small and quick on one thread: a few seconds per epoch on a few hundred reviews
FAST = {"max_len": 64, "batch_size": 16, "lr": 5e-4, "warmup_ratio": 0.1}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, reviews):
    """A save_pretrained folder like `lmforge pretrain` writes: tiny BERT MLM + WordPiece."""
    import torch

    from lmforge.models.presets import build_model
    from lmforge.tokenizer.folder import load_tokenizer
    from lmforge.tokenizer.train import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_bert")
    train_tokenizer(reviews.train_texts[:3000], "wordpiece", 2000, out)
    tok = load_tokenizer(out)
    torch.manual_seed(0)  # the same random "pretrained" weights on every run
    model = build_model("mlm", "tiny", len(tok), max_len=64, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    return out


def _f1(y, pred) -> float:
    return classification_metrics(y, pred, ["neg", "pos"])["macro_f1"]


def test_fit_from_folder_beats_chance_and_round_trips(bert_dir, reviews, tmp_path):
    train_x, train_y = reviews.train_texts[:600], reviews.train_labels[:600]
    val_x, val_y = reviews.val_texts[:200], reviews.val_labels[:200]
    test_x, test_y = reviews.test_texts[:300], reviews.test_labels[:300]
    model = make_model("transformer", init=str(bert_dir), epochs=3, patience=3, **FAST)
    model.fit(train_x, train_y, X_val=val_x, y_val=val_y)
    assert list(model.classes_) == ["neg", "pos"]
    assert len(model.history_) == 3 and all("val_macro_f1" in h for h in model.history_)
    assert model.best_val_macro_f1_ == max(h["val_macro_f1"] for h in model.history_)
    proba = model.predict_proba(test_x)
    assert proba.shape == (300, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # probabilities come back in input order, whatever the length-sorted batching did (a new
    # order changes which texts share a padded batch: bf16 rounding moves them by ~1e-4)
    np.testing.assert_allclose(model.predict_proba(test_x[::-1]), proba[::-1], atol=2e-3)
    pred = model.predict(test_x)
    assert _f1(test_y, pred) > 0.6, "no better than chance (0.5)"

    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert {MODEL_JSON, "config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert not any(f.endswith((".pkl", ".pickle", ".joblib", ".pt", ".bin")) for f in files)
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(test_x), proba)

    # the folder is a plain transformers folder, with our label names
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")
    assert hf.config.id2label == {0: "neg", 1: "pos"}


def test_init_none_builds_the_same_architecture(bert_dir, small):
    train_x, train_y, test_x, _ = small
    model = make_model(
        "transformer", init="none", tokenizer=str(bert_dir), preset="tiny", epochs=1, **FAST
    ).fit(train_x[:200], train_y[:200])
    assert model.predict_proba(test_x[:20]).shape == (20, 2)
    pretrained = make_model("transformer", init=str(bert_dir), epochs=1, **FAST).fit(
        train_x[:50], train_y[:50]
    )
    shapes = {k: tuple(v.shape) for k, v in model.model_.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in pretrained.model_.state_dict().items()}

    # config_from copies an architecture exactly; no tokenizer at all trains a WordPiece one
    same = make_model("transformer", init="none", config_from=str(bert_dir), epochs=1, **FAST)
    same.fit(train_x[:50], train_y[:50])
    assert same.model_.config.vocab_size == pretrained.model_.config.vocab_size
    own = make_model("transformer", init="none", vocab_size=300, epochs=1, **FAST)
    own.fit(train_x[:100], train_y[:100])
    assert len(own.tokenizer_) <= 300 and own.predict(test_x[:5]).shape == (5,)


def test_clone_and_cross_val_score(bert_dir, small):
    train_x, train_y, _, _ = small
    model = make_model("transformer", init=str(bert_dir), epochs=1, **FAST)
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    scores = cross_val_score(
        twin, np.asarray(train_x[:160], dtype=object), train_y[:160], cv=2, scoring="f1_macro"
    )
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_freeze_layers_freezes_embeddings_and_first_layers(bert_dir, small):
    import torch
    from transformers import AutoModel

    train_x, train_y, _, _ = small
    model = make_model("transformer", init=str(bert_dir), freeze_layers=2, epochs=1, **FAST)
    model.fit(train_x[:64], train_y[:64])
    bert = model.model_.base_model
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    for i, layer in enumerate(bert.encoder.layer):
        assert all(p.requires_grad == (i >= 2) for p in layer.parameters()), i
    assert all(p.requires_grad for p in model.model_.classifier.parameters())
    # frozen weights are exactly the folder's; a trained layer moved
    start = AutoModel.from_pretrained(bert_dir).state_dict()
    now = bert.state_dict()
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):
        assert torch.equal(now[key], start[key]), key
    assert not torch.equal(
        now["encoder.layer.3.output.dense.weight"], start["encoder.layer.3.output.dense.weight"]
    )
    with pytest.raises(LmforgeError, match="freeze_layers"):
        make_model("transformer", init=str(bert_dir), freeze_layers=9, epochs=1).fit(
            train_x[:8], train_y[:8]
        )


def test_bad_init_folder_is_a_one_line_error(tmp_path, small):
    train_x, train_y, _, _ = small
    with pytest.raises(LmforgeError):
        make_model("transformer", init=str(tmp_path / "missing")).fit(train_x[:8], train_y[:8])


def test_inference_uses_bf16_only_for_batches_where_it_pays():
    from lmforge.classify.transformer import BF16_MIN_ROWS

    model = make_model("transformer", init="none")
    model.dtype_ = "bf16"  # what training chose on a CPU where bf16 is fast
    assert model.inference_dtype(1) == "fp32"
    assert model.inference_dtype(BF16_MIN_ROWS - 1) == "fp32"
    assert model.inference_dtype(BF16_MIN_ROWS) == "bf16"
    model.dtype_ = "fp32"
    assert model.inference_dtype(64) == "fp32"


def test_layer_decay_and_reinit_top_layers(bert_dir, small):
    import torch
    from transformers import AutoModel

    train_x, train_y, _, _ = small
    model = make_model(
        "transformer", init=str(bert_dir), layer_decay=0.5, reinit_layers=1, device="cpu", **FAST
    )
    model.setup(np.unique(train_y), train_x[:8])
    n = len(model.model_.base_model.encoder.layer)
    scale = model.lr_scale()
    assert scale(f"bert.encoder.layer.{n - 1}.output.dense.weight") == 0.5
    assert scale("bert.encoder.layer.0.output.dense.weight") == 0.5**n
    assert scale("bert.embeddings.word_embeddings.weight") == 0.5 ** (n + 1)
    assert scale("classifier.weight") == 1.0
    start = AutoModel.from_pretrained(bert_dir).state_dict()
    now = model.model_.base_model.state_dict()
    low, top = "encoder.layer.0.output.dense.weight", f"encoder.layer.{n - 1}.output.dense.weight"
    assert torch.equal(now[low], start[low]) and not torch.equal(now[top], start[top])
    assert make_model("transformer", init=str(bert_dir)).lr_scale() is None  # off by default
    with pytest.raises(LmforgeError, match="reinit_layers"):
        make_model("transformer", init=str(bert_dir), reinit_layers=9).setup(["a", "b"], ["x"])


def test_batches_are_padded_to_a_few_lengths_within_the_positions(bert_dir, small):
    train_x, train_y, _, _ = small
    model = make_model("transformer", init=str(bert_dir), device="cpu", **FAST)
    model.setup(np.unique(train_y), train_x[:8])
    encoded = model.encode(train_x[:200])
    order = [np.arange(i, i + 16) for i in range(0, 200 - 16, 16)]
    widths = {b.inputs["input_ids"].shape[1] for b in model.batches(encoded, order)}
    assert widths <= {16, 32, 48, 64} and max(len(e) for e in encoded) <= 64  # max_len 64
    for batch in model.batches(encoded, order):
        real = batch.inputs["attention_mask"].sum().item()
        assert real == batch.tokens == sum(len(encoded[i]) for i in batch.idx)
