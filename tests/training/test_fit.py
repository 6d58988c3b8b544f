"""The one fit loop: every torch trainer goes through it; a checkpoint resumes it exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmforge.training import adamw, bucketed_batches, fit, param_groups, record_fits


def test_all_four_trainers_go_through_the_shared_loop(sample, tmp_path):
    from transformers import BertConfig

    from lmforge.classify.estimator import make_model
    from lmforge.compress.distill import build_transfer_set, distill, teacher_logits
    from lmforge.compress.prune import prune_magnitude

    cfg = tmp_path / "cfg"
    BertConfig(
        vocab_size=600, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    ).save_pretrained(cfg)  # fmt: skip
    x, y = sample.train_texts, sample.train_labels
    with record_fits() as calls:
        make_model("textcnn", epochs=1, embed_dim=16, hidden=16, max_len=48).fit(x, y)
        teacher = make_model(
            "transformer", init="none", config_from=str(cfg), vocab_size=600, max_len=48,
            epochs=1, batch_size=16, dtype="fp32",
        ).fit(x, y, X_val=sample.val_texts, y_val=sample.val_labels)  # fmt: skip
        teacher.save(tmp_path / "teacher")
        transfer = build_transfer_set(sample)
        logits = teacher_logits(tmp_path / "teacher", transfer.texts)
        distill(tmp_path / "teacher", "textcnn:epochs=1:embed_dim=16:hidden=16", transfer,
                logits, sample, tmp_path / "student")  # fmt: skip
        prune_magnitude(tmp_path / "teacher", tmp_path / "pruned", 0.5, sample, recovery_texts=64)
    names = [name for name, _ in calls]
    assert names == ["textcnn", "transformer", "distill", "prune-recovery"]
    steps = {name: result.steps for name, result in calls}
    # the TextCNN holds out val_fraction=0.1 of its 200 texts: 180 in batches of 64
    assert steps["textcnn"] == 3 and steps["transformer"] == -(-len(x) // 16)
    assert steps["prune-recovery"] == -(-64 // 16)
    assert all(result.history and result.history[0]["tokens"] > 0 for _, result in calls)
    assert calls[1][1].best_score == teacher.best_val_macro_f1_ is not None


class Stop(Exception):
    pass


def _textcnn_run(sample, checkpoint_dir, stop_after=None):
    """3 epochs of a TextCNN (dropout 0.4: the RNG state matters) on real reviews."""
    from lmforge.classify.estimator import make_model

    torch.manual_seed(0)
    est = make_model("textcnn", embed_dim=16, hidden=16, max_len=48, batch_size=32)
    est.setup(np.unique(sample.train_labels), sample.train_texts)
    encoded = est.encode(sample.train_texts)
    lengths = [len(e) for e in encoded]
    index = {c: i for i, c in enumerate(est.classes_.tolist())}
    targets = torch.tensor([index[c] for c in sample.train_labels.tolist()])

    def stop(record):
        if stop_after is not None and record["epoch"] == stop_after:
            raise Stop

    result = fit(
        est.model_,
        lambda b: torch.nn.functional.cross_entropy(est.forward(b), targets[b.idx]),
        lambda rng: est.batches(encoded, bucketed_batches(lengths, 32, rng)),
        optimizer=adamw(param_groups(est.model_, 0.01), 2e-3),
        epochs=3,
        rng=np.random.default_rng(0),
        evaluate=lambda: float(est.predict(sample.val_texts[:30]).tolist().count("pos")),
        patience=5,
        checkpoint_dir=checkpoint_dir,
        on_epoch=stop,
    )
    return est.model_.state_dict(), result


def test_resume_from_a_checkpoint_gives_identical_weights(sample, tmp_path):
    straight, full = _textcnn_run(sample, tmp_path / "a")
    with pytest.raises(Stop):
        _textcnn_run(sample, tmp_path / "b", stop_after=1)
    resumed, rest = _textcnn_run(sample, tmp_path / "b")
    assert rest.resumed_from_epoch == 1 and rest.steps == full.steps
    assert [h["loss"] for h in rest.history] == [h["loss"] for h in full.history]
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
