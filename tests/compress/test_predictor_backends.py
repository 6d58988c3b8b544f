"""One Predictor, every backend: the same labels for the same texts."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.compress.export import export
from lmforge.compress.quantize import quantize
from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor


@pytest.fixture(scope="module")
def variants(transformer_dir, textcnn_dir, sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    texts = sample.test_texts[:50]
    out = {"transformer": [transformer_dir], "textcnn": [textcnn_dir]}
    for name, source in (("transformer", transformer_dir), ("textcnn", textcnn_dir)):
        for fmt in ("onnx", "torchscript"):
            export(source, root / f"{name}-{fmt}", fmt, texts)
            out[name].append(root / f"{name}-{fmt}")
        quantize(source, root / f"{name}-onnx-int8", "onnx-int8", texts)
        out[name].append(root / f"{name}-onnx-int8")
    return out


@pytest.mark.parametrize("family", ["transformer", "textcnn"])
def test_same_labels_across_backends(variants, family, sample):
    texts = sample.test_texts
    reference = None
    backends = []
    for directory in variants[family]:
        p = Predictor.load(directory, batch_size=16, trust_model_code=True)  # ours
        backends.append(p.backend_name)
        labels = [a.label for a in p.predict(texts)]
        if reference is None:
            reference = labels
        agreement = np.mean(np.asarray(labels) == np.asarray(reference))
        # fp32 exports agree exactly; int8 may flip a borderline text or two
        assert agreement >= (0.97 if "int8" in directory.name else 1.0), directory.name
        assert p.labels == ["neg", "pos"]
    assert backends == ["native", "onnx", "torchscript", "onnx"]


def test_onnx_predictor_api_and_options(variants, sample):
    directory = variants["transformer"][1]
    p = Predictor.load(directory, threads=1, max_chars=20)
    info = p.info()
    assert info["backend"] == "onnx" and info["labels"] == ["neg", "pos"]
    assert info["size_bytes"] > (directory / "model.onnx").stat().st_size
    assert p.warmup() >= 0
    long_text = sample.test_texts[0] * 5
    answer = p.predict([long_text])[0]
    assert answer.truncated
    np.testing.assert_allclose(p.predict_proba([long_text]), p.predict_proba([long_text[:20]]))
    assert "CPUExecutionProvider" in p.backend.providers
    assert p.predict([]) == []


def test_backend_can_be_forced_and_bad_options_fail_in_one_line(variants):
    native_dir = variants["transformer"][0]
    with pytest.raises(LmforgeError, match="model file not found"):
        Predictor.load(native_dir, backend="onnx")
    with pytest.raises(LmforgeError, match="takes only threads"):
        Predictor.load(variants["transformer"][2], bogus=1, trust_model_code=True)
