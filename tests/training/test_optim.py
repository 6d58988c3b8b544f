"""AdamW parameter groups, schedules, early stopping."""

from __future__ import annotations

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.training import EarlyStopping, Schedule, adamw, param_groups, set_lr


def _bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    return BertForSequenceClassification(cfg)


def test_no_decay_on_biases_and_layernorm_and_frozen_parameters_left_out():
    model = _bert()
    for p in model.bert.embeddings.parameters():
        p.requires_grad_(False)
    groups = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = [names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    other = [names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    assert decay and all(n.endswith("weight") and "LayerNorm" not in n for n in decay)
    assert any("LayerNorm" in n for n in other) and any(n.endswith("bias") for n in other)
    assert not any(n.startswith("bert.embeddings") for n in decay + other)
    trainable = sum(p.requires_grad for p in model.parameters())
    assert len(decay) + len(other) == trainable


def test_layer_wise_lr_scale_sets_each_group_peak():
    model = _bert()
    scale = lambda name: 0.5 if "layer.0." in name else 1.0  # noqa: E731
    opt = adamw(param_groups(model, 0.01, scale), lr=1e-3)
    lrs = {g["lr"] for g in opt.param_groups}
    assert lrs == {1e-3, 5e-4}
    set_lr(opt, 0.1)
    assert {round(g["lr"], 12) for g in opt.param_groups} == {1e-4, 5e-5}


def test_schedules_warm_up_then_decay():
    cos = Schedule("cosine", warmup_steps=4, min_ratio=0.1)
    assert cos.factor(0, 0.0) == 0.25 and cos.factor(3, 0.0) == 1.0
    assert cos.factor(10, 0.5) == pytest.approx(0.55) and cos.factor(10, 1.0) == pytest.approx(0.1)
    lin = Schedule("linear", warmup_steps=2, total_steps=12)
    assert [lin.factor(s) for s in (0, 1, 2, 7, 12)] == [0.5, 1.0, 1.0, 0.5, 0.0]
    one = Schedule("one-cycle", warmup_steps=10, min_ratio=0.0, total_steps=20)
    assert one.factor(0) == pytest.approx(1 / 25 + (24 / 25) / 10) and one.factor(9) == 1.0
    assert one.factor(15) == pytest.approx(0.5)
    assert Schedule("constant", warmup_steps=0).factor(99, 0.9) == 1.0
    with pytest.raises(LmforgeError, match="schedule"):
        Schedule("triangle")


def test_early_stopping_stops_after_patience_and_restores_best_weights() -> None:
    model = torch.nn.Linear(2, 1)
    early = EarlyStopping(patience=2)
    assert early.best_score is None
    assert not early.update(0.5, model)
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not early.update(0.4, model)  # one epoch without gain
    assert early.update(0.45, model)  # two: stop
    early.restore(model)
    assert torch.equal(model.weight, best)
    assert early.best_score == 0.5
