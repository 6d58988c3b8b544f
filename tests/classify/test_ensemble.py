"""The ensemble folder: members inside it, its combiner (a stacker or selected weights) fitted on
validation, loaded by every command that takes a model folder, and never a path outside it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmforge.classify.data import load_classification_data
from lmforge.classify.ensemble import EnsembleClassifier, select_weights
from lmforge.classify.evaluate import train_and_evaluate
from lmforge.classify.metrics import classification_metrics
from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor


@pytest.fixture(scope="module")
def split(tmp_path_factory, review_sample):
    path = tmp_path_factory.mktemp("data") / "reviews.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in review_sample), encoding="utf-8"
    )
    return str(path), load_classification_data(str(path), seed=0)


@pytest.fixture(scope="module")
def members(tmp_path_factory, split):
    out = tmp_path_factory.mktemp("models")
    for spec in ("nb", "lr", "svm:features=char:ngram_max=2", "dt"):
        train_and_evaluate(spec, split[1], out / spec.split(":")[0], name=spec)
    return [out / "nb", out / "lr", out / "svm"]


@pytest.fixture(scope="module")
def tree(members):
    return members[0].parent / "dt"


def val_f1(directory, data) -> float:
    p = Predictor.load(directory)
    pred = np.asarray(p.labels)[np.argmax(p.predict_proba(data.val_texts), axis=1)]
    return classification_metrics(data.val_labels, pred, data.label_names)["macro_f1"]


def test_ensemble_folder_loads_and_scores_at_least_its_best_member(members, split, tmp_path):
    data = split[1]
    model = EnsembleClassifier(members=[str(m) for m in members], method="select").fit(
        data.val_texts, data.val_labels
    )
    model.save(tmp_path / "ens")
    # the members live inside the folder; the originals can go
    assert sorted(p.name for p in (tmp_path / "ens" / "members").iterdir()) == ["lr", "nb", "svm"]
    loaded = Predictor.load(tmp_path / "ens")
    assert loaded.model_type == "ensemble" and loaded.labels == ["neg", "pos"]
    np.testing.assert_allclose(loaded.predict_proba(data.test_texts).sum(axis=1), 1.0)
    assert val_f1(tmp_path / "ens", data) >= max(val_f1(m, data) for m in members) - 1e-12
    assert 0 < model.cross_fitted_macro_f1_ <= 1
    assert (
        Predictor.load(tmp_path / "ens").size_bytes()
        > sum(Predictor.load(m).size_bytes() for m in members) * 0.99
    )


def test_classify_eval_takes_the_ensemble(members, split, tmp_path):
    from lmforge.commands.classify import eval_model

    data_path, data = split
    model = EnsembleClassifier(members=[str(m) for m in members[:2]]).fit(
        data.val_texts, data.val_labels
    )
    model.save(tmp_path / "ens")
    metrics = eval_model(tmp_path / "ens", data_path, out=tmp_path / "eval")
    assert metrics["macro_f1"] > 0.65


@pytest.mark.parametrize("name", ["../nb", "/tmp", "..", "link"])
def test_a_member_outside_the_folder_is_refused(members, split, tmp_path, name):
    data = split[1]
    EnsembleClassifier(members=[str(m) for m in members[:2]]).fit(
        data.val_texts, data.val_labels
    ).save(tmp_path / "ens")
    (tmp_path / "ens" / "members" / "link").symlink_to(members[0])
    meta_path = tmp_path / "ens" / "lmforge_model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["params"]["members"][0] = name
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(LmforgeError, match="member"):
        Predictor.load(tmp_path / "ens")


def test_selection_starts_from_the_best_member_and_adds_only_what_raises_f1():
    y = np.array([0, 0, 1, 1, 0, 1])
    good = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4], [0.45, 0.55]])
    noise = np.full((6, 2), 0.5)  # lowers log loss of an overconfident member, never F1
    weights = select_weights([noise, good], y)
    assert weights.tolist() == [0.0, 1.0]


def test_stacked_folder_round_trips_and_stores_numbers_only(members, split, tmp_path):
    data = split[1]
    model = EnsembleClassifier(members=[str(m) for m in members]).fit(
        data.val_texts, data.val_labels
    )
    model.save(tmp_path / "ens")
    meta = json.loads((tmp_path / "ens" / "lmforge_model.json").read_text(encoding="utf-8"))
    assert meta["params"]["method"] == "stack"
    assert np.asarray(meta["stacker"]["coef"]).shape == (1, 2 * len(members))
    assert sorted(meta["files"]) == sorted(
        f for f in meta["files"] if f.startswith("members/")
    )  # no pickled combiner beside the members
    loaded = Predictor.load(tmp_path / "ens", max_chars=None)  # the members see whole texts too
    np.testing.assert_allclose(
        loaded.predict_proba(data.test_texts), model.predict_proba(data.test_texts), atol=1e-12
    )
    assert 0 < model.cross_fitted_macro_f1_ <= 1
    assert abs(sum(model.weights_) - 1) < 1e-9


def test_stacking_is_not_swayed_by_an_overconfident_member(members, tree, split):
    """A decision tree's probabilities are 0 or 1: in a plain mean it outvotes Naive Bayes's
    calibrated-ish ones wherever they disagree. The stacker learns how far to trust each."""
    data = split[1]
    pair = [str(members[0]), str(tree)]
    mean = EnsembleClassifier(members=pair, weights=[1, 1]).fit(data.val_texts, data.val_labels)
    stack = EnsembleClassifier(members=pair).fit(data.val_texts, data.val_labels)
    labels = np.asarray(stack.classes_)

    def test_f1(model):
        pred = labels[np.argmax(model.predict_proba(data.test_texts), axis=1)]
        return classification_metrics(data.test_labels, pred, data.label_names)["macro_f1"]

    assert stack.weights_[0] > stack.weights_[1]  # Naive Bayes counts for more than the tree
    assert test_f1(stack) > test_f1(mean) + 0.02


def test_an_ensemble_folder_without_a_stacker_still_loads_as_a_weighted_mean(
    members, split, tmp_path
):
    data = split[1]
    EnsembleClassifier(members=[str(m) for m in members[:2]], weights=[3, 1]).fit(
        data.val_texts, data.val_labels
    ).save(tmp_path / "ens")
    meta_path = tmp_path / "ens" / "lmforge_model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta["params"]["method"]  # as written before stacking existed
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    loaded = Predictor.load(tmp_path / "ens", max_chars=None)
    a, b = (Predictor.load(m, max_chars=None).predict_proba(data.test_texts) for m in members[:2])
    np.testing.assert_allclose(loaded.predict_proba(data.test_texts), 0.75 * a + 0.25 * b)


def test_a_stacker_that_does_not_fit_its_members_is_one_line(members, split, tmp_path):
    data = split[1]
    EnsembleClassifier(members=[str(m) for m in members[:2]]).fit(
        data.val_texts, data.val_labels
    ).save(tmp_path / "ens")
    meta_path = tmp_path / "ens" / "lmforge_model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["stacker"]["coef"] = [[1.0, 2.0]]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(LmforgeError, match="do not fit 2 members"):
        Predictor.load(tmp_path / "ens")
