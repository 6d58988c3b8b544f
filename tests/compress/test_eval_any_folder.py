"""`lmforge classify eval` takes every folder the Predictor takes: the int8 ONNX variant that
`lmforge predict` and `lmforge serve` run used to be refused (`network None does not match
'textcnn'`)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.compress.quantize import quantize
from lmforge.predictor import Predictor


def test_classify_eval_takes_an_int8_onnx_folder(textcnn_dir, sample, sample_csv, tmp_path):
    int8 = tmp_path / "textcnn-onnx-int8"
    quantize(textcnn_dir, int8, "onnx-int8", sample.test_texts[:50])
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app, ["classify", "eval", str(int8), str(sample_csv), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    # the same numbers as the Predictor's own answers on the same 200 test reviews
    predicted = [a.label for a in Predictor.load(int8, max_chars=None).predict(sample.test_texts)]
    expected = sum(p == y for p, y in zip(predicted, sample.test_labels, strict=True))
    assert metrics["n"] == len(sample.test_texts) == 200
    assert metrics["accuracy"] == expected / 200
    assert (out / "predictions.csv").is_file() and (out / "confusion_matrix.png").is_file()
