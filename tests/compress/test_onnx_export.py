"""ONNX and TorchScript exports give the PyTorch model's logits, at any batch size and length."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.classify.estimator import read_model_meta
from lmforge.compress.export import export
from lmforge.predictor import Predictor


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("model", ["transformer_dir", "textcnn_dir", "bilstm_dir"])
def test_export_matches_pytorch_and_records_parity(model, fmt, sample, tmp_path, request):
    source = request.getfixturevalue(model)
    check = export(source, tmp_path / fmt, fmt, sample.test_texts)
    assert check["n"] == len(sample.test_texts)
    assert check["max_abs_logit_diff"] < 1e-4
    assert check["label_agreement"] == 1.0
    meta = read_model_meta(tmp_path / fmt)
    assert meta["backend"] == fmt and meta["parity"]["max_abs_logit_diff"] < 1e-4
    # the exported folder, run through the Predictor with odd batch sizes (lengths vary)
    native = Predictor.load(source).predict_proba(sample.test_texts)
    for bs in (1, 7, 64):
        exported = Predictor.load(
            tmp_path / fmt,
            batch_size=bs,
            trust_model_code=True,  # made by this test
        ).predict_proba(sample.test_texts)
        np.testing.assert_allclose(exported, native, atol=1e-4)


def test_onnx_graph_has_dynamic_batch_and_sequence_axes(transformer_dir, sample, tmp_path):
    import onnx

    export(transformer_dir, tmp_path / "o", "onnx", sample.test_texts[:20])
    graph = onnx.load(str(tmp_path / "o" / "model.onnx")).graph
    dims = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in graph.input
    }
    assert dims == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_classical_models_are_refused_with_one_line(tmp_path, sample):
    import json

    from lmforge.errors import LmforgeError

    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "lmforge_model.json").write_text(json.dumps({"model_type": "nb", "label_names": []}))
    with pytest.raises(LmforgeError, match="no network to export"):
        export(nb, tmp_path / "x", "onnx", sample.test_texts)
