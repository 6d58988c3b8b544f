from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from lmforge.classify.estimator import MODEL_JSON, available_models, load_model, make_model
from lmforge.classify.metrics import classification_metrics
from lmforge.errors import LmforgeError

MODELS = available_models()


def test_every_registered_model_has_fast_test_settings(fast_params):
    assert {"nb", "svm", "lr", "dt", "rf", "gb"} <= set(MODELS)
    assert set(MODELS) <= set(fast_params)


@pytest.mark.parametrize("name", MODELS)
def test_fit_predict_save_load_round_trip(name, small, tmp_path, fast_params):
    train_x, train_y, test_x, test_y = small
    model = make_model(name, **fast_params[name]).fit(train_x, train_y)
    assert list(model.classes_) == ["neg", "pos"]
    proba = model.predict_proba(test_x)
    assert proba.shape == (len(test_x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    pred = model.predict(test_x)
    f1 = classification_metrics(test_y, pred, ["neg", "pos"])["macro_f1"]
    # chance is 0.5; char-level networks on 500 texts are weak but clearly above it
    floor = 0.55 if name in ("textcnn", "bilstm", "gru", "dt", "transformer") else 0.65
    assert f1 > floor, f"{name}: macro-F1 {f1:.3f} is not better than chance"

    model.save(tmp_path / name)
    files = sorted(p.name for p in (tmp_path / name).iterdir())
    assert MODEL_JSON in files
    assert not any(f.endswith((".pkl", ".pickle", ".joblib", ".pt", ".bin")) for f in files)
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(test_x), pred)
    np.testing.assert_allclose(loaded.predict_proba(test_x), proba, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_clone_and_cross_val_score(name, small, fast_params):
    train_x, train_y, _, _ = small
    model = make_model(name, **fast_params[name])
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    scores = cross_val_score(
        twin, np.asarray(train_x[:300], dtype=object), train_y[:300], cv=2, scoring="f1_macro"
    )
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_char_features_and_multiclass(small):
    train_x, train_y, test_x, test_y = small
    # three classes: split pos by length, labels as ints
    y = np.where(train_y == "neg", 0, np.where([len(t) > 40 for t in train_x], 2, 1))
    model = make_model("svm:features=char:ngram_max=2").fit(train_x, y)
    assert list(model.classes_) == [0, 1, 2]
    assert model.predict_proba(test_x[:10]).shape == (10, 3)


def test_tampered_skops_file_is_refused(small, tmp_path):
    import skops.io as sio

    train_x, train_y, _, _ = small
    make_model("nb").fit(train_x, train_y).save(tmp_path / "m")
    # a file holding a type outside the trusted list (here: a function from os) must not load
    import os

    sio.dump(
        {"vectorizer": os.getcwd, "selector": None, "classifier": None},
        tmp_path / "m" / "model.skops",
    )
    with pytest.raises(LmforgeError, match="untrusted"):
        load_model(tmp_path / "m")


def test_unknown_model_and_param():
    with pytest.raises(LmforgeError, match="unknown model"):
        make_model("nope")
    with pytest.raises(LmforgeError, match="no parameter"):
        make_model("svm:depth=3")
    meta_name = make_model("svm:C=0.5:features=char")
    assert meta_name.C == 0.5 and meta_name.features == "char"
    json.dumps(meta_name.json_params())


def test_neural_with_a_tokenizer_folder(small, tmp_path, fast_params):
    train_mod = pytest.importorskip("lmforge.tokenizer.train")
    train_x, train_y, test_x, _ = small
    tok_dir = train_mod.train_tokenizer(
        train_x, kind="wordpiece", vocab_size=800, out_dir=tmp_path / "tok"
    )
    params = {**fast_params["textcnn"], "epochs": 2, "tokenizer": str(tok_dir)}
    model = make_model("textcnn", **params).fit(train_x, train_y)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer").is_dir()
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(
        loaded.predict_proba(test_x[:50]), model.predict_proba(test_x[:50]), atol=1e-6
    )
