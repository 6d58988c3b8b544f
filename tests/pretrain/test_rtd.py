"""Replaced-token detection (ELECTRA) at tiny scale: it learns, resumes exactly, and the saved
discriminator is an encoder folder that the classifier fine-tunes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, ElectraForPreTraining

from lmforge.pretrain.loop import pretrain
from lmforge.pretrain.report import read_log

SMALL = {"batch_size": 8, "seq_len": 32, "warmup_steps": 2, "progress": False, "dtype": "fp32"}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def rtd_run(mlm_tokens, tmp_path_factory):
    out = tmp_path_factory.mktemp("rtd") / "rtd"
    args = dict(max_steps=40, lr=2e-3, eval_every=20, log_every=20, eval_batches=4, **SMALL)
    return out, pretrain(mlm_tokens, out, "rtd", "tiny", **args)


def test_discriminator_learns_to_spot_replaced_tokens(rtd_run, mlm_tokens):
    """After a few dozen steps the discriminator's accuracy is still the base rate (it says
    "original" everywhere, as ELECTRA's does early on), but its scores already rank replaced
    tokens above real ones: AUC on held-out text with 15 % of the tokens swapped at random."""
    from sklearn.metrics import roc_auc_score

    from lmforge.pretrain.data import read_split

    out, manifest = rtd_run
    assert manifest["final_val_loss"] < read_log(out)[0]["train_loss"]
    disc = ElectraForPreTraining.from_pretrained(out).eval()
    split = read_split(mlm_tokens, "validation")
    rows = [split.tokens[a : a + 30] for a in split.starts[:-1][:64] if a + 30 <= split.starts[-1]]
    x = torch.tensor(np.stack(rows).astype(np.int64))
    rng = np.random.default_rng(0)
    swap = torch.from_numpy(rng.random(x.shape) < 0.15)
    vocab = disc.config.vocab_size
    random_ids = torch.from_numpy(rng.integers(5, vocab, x.shape))
    swap &= random_ids != x
    corrupted = torch.where(swap, random_ids, x)
    with torch.no_grad():
        scores = disc(input_ids=corrupted, attention_mask=torch.ones_like(x)).logits
    auc = roc_auc_score(swap.flatten().numpy(), scores.flatten().numpy())
    assert auc > 0.6, auc


def test_rtd_folder_is_a_discriminator_the_classifier_loads(rtd_run, review_sample):
    from lmforge.classify.estimator import make_model

    out, _ = rtd_run
    disc = ElectraForPreTraining.from_pretrained(out)
    assert disc.config.model_type == "electra" and disc.config.hidden_size == 256
    head = AutoModelForSequenceClassification.from_pretrained(out, num_labels=2)
    assert type(head).__name__ == "ElectraForSequenceClassification"
    texts = [r["text"] for r in review_sample[:40] + review_sample[-40:]]
    labels = [r["label"] for r in review_sample[:40] + review_sample[-40:]]
    model = make_model("transformer", init=str(out), epochs=1, max_len=32, batch_size=16)
    model.fit(texts, labels)
    assert set(model.predict(texts[:10])) <= {"pos", "neg"}


def test_rtd_resume_continues_the_generator_exactly(mlm_tokens, tmp_path):
    args = dict(max_steps=6, eval_every=3, log_every=1, save_every=2, eval_batches=2, **SMALL)
    pretrain(mlm_tokens, tmp_path / "a", "rtd", **args)
    assert pretrain(mlm_tokens, tmp_path / "b", "rtd", interrupt_at=5, **args) == {
        "interrupted_at": 5
    }
    pretrain(mlm_tokens, tmp_path / "b", "rtd", resume=True, **args)  # from step 4's checkpoint
    a, b = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    for ra, rb in zip(a, b, strict=True):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-5)
    wa = ElectraForPreTraining.from_pretrained(tmp_path / "a").state_dict()
    wb = ElectraForPreTraining.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
