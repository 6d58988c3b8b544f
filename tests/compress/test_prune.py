"""Pruning reaches the requested sparsity, removes heads for real, and the results still run."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.classify.estimator import load_model, read_model_meta
from lmforge.compress.prune import prunable_weights, prune_heads, prune_magnitude, sparsity_of
from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor


@pytest.mark.parametrize("model", ["transformer_dir", "textcnn_dir"])
def test_magnitude_pruning_reaches_requested_sparsity(model, sample, tmp_path, request):
    source = request.getfixturevalue(model)
    record = prune_magnitude(source, tmp_path / "p", 0.6, sample, recovery_texts=200)
    assert record["sparsity"] == pytest.approx(0.6, abs=0.005)
    assert record["recovery"]["texts"] == 200
    # the saved weights (after the recovery fine-tune) still have the zeros
    reloaded = load_model(tmp_path / "p")
    assert sparsity_of(prunable_weights(reloaded.model_)) == pytest.approx(0.6, abs=0.005)
    assert record["weights_zlib_bytes"] < record["weights_bytes"]
    answers = Predictor.load(tmp_path / "p").predict(sample.test_texts[:20])
    assert len(answers) == 20


def test_head_pruning_removes_heads_and_parameters(transformer_dir, sample, tmp_path):
    record = prune_heads(
        transformer_dir, tmp_path / "h", 0.5, sample, recovery_texts=200, importance_texts=100,
        parity_texts=sample.test_texts[:50],
    )  # fmt: skip
    assert record["heads_total"] == 8 and record["heads_kept"] == 4
    assert all(len(v) < 4 for v in record["heads_removed"].values())  # ≥ 1 head kept per layer
    # q, k, v and the output projection lose 4 heads × 16 dims (2 layers × 2 heads each)
    assert record["parameters_before"] - record["parameters_after"] == 2 * 2 * 16 * (3 * 65 + 64)
    meta = read_model_meta(tmp_path / "h")
    assert meta["backend"] == "onnx" and meta["parity"]["max_abs_logit_diff"] < 1e-4
    proba = Predictor.load(tmp_path / "h").predict_proba(sample.test_texts[:30])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_bad_fractions_are_refused(transformer_dir, sample, tmp_path):
    with pytest.raises(LmforgeError, match="sparsity"):
        prune_magnitude(transformer_dir, tmp_path, 1.5, sample)
    with pytest.raises(LmforgeError, match="fraction"):
        prune_heads(transformer_dir, tmp_path, 0.0, sample)
