"""The classical models' word features: stopwords go, words that flip or carry sentiment stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmforge.classify.classical import word_documents
from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model

REVIEWS = Path(__file__).parents[1] / "data" / "english_reviews.csv"

# A negative review of the test split ("The coat is thin, the buttons fell off and it does not
# keep me warm.") cut to the clause that decides it, and the same clause without the negation
NEGATED = "It does not keep me warm."
PLAIN = "It does keep me warm."


def test_english_negations_are_not_stopwords() -> None:
    negated, plain = word_documents([NEGATED, PLAIN])
    assert "not" in negated.split() and negated != plain
    docs = word_documents(["Never again, no way.", "I don't like it.", "The lid is not bad."])
    assert {"never", "no", "like", "not", "bad"} <= set(" ".join(docs).split())
    assert "the" not in " ".join(docs).split()  # plain function words still go


def test_a_negation_moves_a_trained_model_towards_the_negative_label() -> None:
    data = load_classification_data(str(REVIEWS))
    model = make_model("nb").fit(data.train_texts, data.train_labels)
    neg = list(model.classes_).index("neg")
    p_negated, p_plain = model.predict_proba([NEGATED, PLAIN])[:, neg]
    assert p_negated > p_plain + 0.05
    assert np.asarray(model.predict([NEGATED]))[0] == "neg"
