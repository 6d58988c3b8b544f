"""int8 variants stay close to the fp32 model on real reviews, and are really smaller."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.classify.estimator import read_model_meta
from lmforge.classify.metrics import classification_metrics
from lmforge.compress.export import export
from lmforge.compress.quantize import TextCalibrationReader, quantize
from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor


def _accuracy(directory, sample) -> float:
    p = Predictor.load(directory, trust_model_code=True)  # made by this test
    pred = [a.label for a in p.predict(sample.test_texts)]
    return classification_metrics(sample.test_labels, np.asarray(pred))["accuracy"]


@pytest.mark.parametrize("method", ["onnx-int8", "torch-int8", "onnx-int8-static"])
def test_int8_accuracy_is_within_bound_of_fp32(transformer_dir, sample, tmp_path, method):
    calib = sample.train_texts[:64]
    check = quantize(transformer_dir, tmp_path / method, method, sample.test_texts, calib)
    # int8 noise moves logits a little and flips at most a few borderline labels
    assert check["label_agreement"] >= 0.95
    assert 0 < check["max_abs_logit_diff"] < 1.0
    fp32 = _accuracy(transformer_dir, sample)
    assert abs(_accuracy(tmp_path / method, sample) - fp32) <= 0.03
    assert (
        read_model_meta(tmp_path / method)["parity"]["label_agreement"] == check["label_agreement"]
    )


def test_dynamic_int8_onnx_is_smaller_than_fp32_onnx(transformer_dir, sample, tmp_path):
    export(transformer_dir, tmp_path / "fp32", "onnx", sample.test_texts[:10])
    quantize(transformer_dir, tmp_path / "int8", "onnx-int8", sample.test_texts[:10])
    fp32 = (tmp_path / "fp32" / "model.onnx").stat().st_size
    int8 = (tmp_path / "int8" / "model.onnx").stat().st_size
    assert int8 < 0.45 * fp32  # weights of MatMul / Gather are int8: about 4x smaller


def test_calibration_reader_walks_batches_sorted_by_length(transformer_dir):
    from lmforge.compress.folder import load_torch_classifier
    from lmforge.compress.inputs import make_inputs

    _, _, spec = load_torch_classifier(transformer_dir)
    encode = make_inputs(transformer_dir, spec)
    texts = ["很好" * k for k in (9, 1, 5, 3, 7)]
    reader = TextCalibrationReader(encode, texts, ["input_ids", "attention_mask"], batch_size=2)
    shapes = []
    while (feeds := reader.get_next()) is not None:
        shapes.append(feeds["input_ids"].shape)
    assert [s[0] for s in shapes] == [2, 2, 1]
    assert [s[1] for s in shapes] == sorted(s[1] for s in shapes)
    reader.rewind()
    assert reader.get_next() is not None


def test_unknown_method_is_one_line(transformer_dir, tmp_path):
    with pytest.raises(LmforgeError, match="unknown quantization"):
        quantize(transformer_dir, tmp_path, "int4", [])


@pytest.mark.parametrize("model", ["textcnn_dir", "bilstm_dir"])
def test_int8_onnx_of_the_small_students_keeps_their_labels(model, sample, tmp_path, request):
    source = request.getfixturevalue(model)
    check = quantize(source, tmp_path / "q", "onnx-int8", sample.test_texts, None)
    assert check["label_agreement"] >= 0.95
    assert abs(_accuracy(tmp_path / "q", sample) - _accuracy(source, sample)) <= 0.03
