"""The CLI: compress a model in one command, predict with any folder, bench in-process."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.compress.bench import add_ratios, markdown_table, measure
from lmforge.compress.report import html_section

runner = CliRunner()


def test_compress_then_predict(textcnn_dir, sample_csv, tmp_path):
    out = tmp_path / "c"
    res = runner.invoke(
        app,
        ["compress", str(textcnn_dir), "--out", str(out), "--data", str(sample_csv),
         "--export", "onnx", "--quantize", "onnx-int8"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    names = [v["name"] for v in manifest["variants"]]
    assert names == ["source", "textcnn-onnx", "textcnn-onnx-int8"]
    onnx = manifest["variants"][1]
    assert onnx["parity"]["label_agreement"] == 1.0 and onnx["test"]["n"] == 200
    assert "lmforge compress: variants" in res.output
    res = runner.invoke(
        app, ["predict", str(out / "textcnn-onnx"), "质量很好", "太差了", "--jsonl"]
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(ln) for ln in res.output.splitlines() if ln.startswith("{")]
    assert [ln["text"] for ln in lines] == ["质量很好", "太差了"]
    assert all(abs(sum(ln["probabilities"].values()) - 1) < 1e-6 for ln in lines)


def test_predict_file_and_errors(textcnn_dir, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"text": "好"}\n{"text": "差"}\n', encoding="utf-8")
    res = runner.invoke(app, ["predict", str(textcnn_dir), "--file", str(f)])
    assert res.exit_code == 0 and "p(pos)" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    from lmforge.errors import LmforgeError

    res = runner.invoke(app, ["predict", str(textcnn_dir), "--file", str(bad)])
    assert isinstance(res.exception, LmforgeError) and "bad.jsonl:1" in str(res.exception)
    res = runner.invoke(app, ["compress", str(textcnn_dir), "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, LmforgeError) and "nothing to do" in str(res.exception)


def test_bench_measures_a_variant_and_the_pipeline(transformer_dir, sample):
    texts, labels = sample.test_texts[:40], [str(x) for x in sample.test_labels[:40]]
    row = measure(str(transformer_dir), texts, labels, latency_n=5, sweep_n=16, batch_sizes=(1, 8))
    base = measure("pipeline:" + str(transformer_dir), texts, labels, latency_n=5, sweep_n=16,
                   batch_sizes=(1, 8))  # fmt: skip
    assert row["backend"] == "native" and base["backend"] == "transformers-pipeline"
    # same weights, same test texts: the Predictor and the pipeline agree on accuracy
    assert abs(row["accuracy"] - base["accuracy"]) <= 0.05
    for r in (row, base):
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["peak_rss_bytes"] > 0 and r["size_bytes"] > 0
        assert r["best_batch"] in (1, 8) and np.isfinite(r["throughput_32"])
    rows = add_ratios([base, row])
    assert rows[0]["x_smaller"] == 1.0 and "x_faster_p50" in rows[1]
    assert "| variant |" in markdown_table(rows)
    assert "<table>" in html_section(
        rows, {"f1_delta_points": 0.1, "x_faster_p50": 2, "x_smaller": 3}
    )
