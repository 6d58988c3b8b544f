"""The Predictor runs any saved classifier folder and answers in input order."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.classify.estimator import make_model
from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor


@pytest.fixture(scope="module")
def nb_dir(small, tmp_path_factory):
    train_x, train_y, _, _ = small
    model = make_model("nb").fit(train_x, train_y)
    return model, model.save(tmp_path_factory.mktemp("nb"), extra={"spec": "nb"})


def test_predictor_matches_the_model_in_input_order(nb_dir, small):
    model, directory = nb_dir
    test_x = small[2][:97]
    predictor = Predictor.load(directory, batch_size=8)  # 13 batches, sorted by length
    answers = predictor.predict(test_x)
    assert [a.label for a in answers] == [str(x) for x in model.predict(test_x)]
    np.testing.assert_allclose(predictor.predict_proba(test_x), model.predict_proba(test_x))
    first = answers[0]
    assert set(first.probabilities) == set(predictor.labels)
    assert first.score == pytest.approx(max(first.probabilities.values()))
    assert predictor.info()["name"] == "nb" and predictor.backend_name == "native"


def test_long_texts_are_cut_and_flagged(nb_dir):
    _, directory = nb_dir
    predictor = Predictor.load(directory, max_chars=10)
    long_text = "质量很好" * 10
    answers = predictor.predict([long_text, "很差"])
    assert [a.truncated for a in answers] == [True, False]
    np.testing.assert_allclose(
        predictor.predict_proba([long_text]), predictor.predict_proba([long_text[:10]])
    )


def test_bad_inputs_are_one_line_errors(nb_dir, tmp_path):
    _, directory = nb_dir
    with pytest.raises(LmforgeError, match="not a string"):
        Predictor.load(directory).predict(["好", 3])
    with pytest.raises(LmforgeError, match="unknown backend"):
        Predictor.load(directory, backend="nope")
    with pytest.raises(LmforgeError, match="not found"):
        Predictor.load(tmp_path / "missing")
    assert Predictor.load(directory).predict([]) == []
