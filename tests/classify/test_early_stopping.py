"""Early stopping shared by the torch classifiers: stops after `patience` flat epochs, restores the best."""

from __future__ import annotations

import torch

from lmforge.classify.neural import EarlyStopping


def test_stops_after_patience_and_restores_best_weights() -> None:
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
