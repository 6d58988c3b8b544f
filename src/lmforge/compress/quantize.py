"""int8 quantization: PyTorch dynamic, ONNX Runtime dynamic, ONNX Runtime static (calibrated).

- ``torch-int8``: ``torch.ao.quantization.quantize_dynamic`` (``Linear``, ``LSTM``, ``GRU`` →
  int8 weights, activations quantized on the fly), traced and saved as TorchScript
  (``backend: torchscript``): the file holds the int8 weights, so the size on disk is real.
- ``onnx-int8``: ``onnxruntime.quantization.quantize_dynamic`` of the fp32 ONNX export (int8
  weights of MatMul / Gemm / Gather / LSTM, activations quantized at run time; Conv stays fp32,
  see :data:`DYNAMIC_OPS`).
- ``onnx-int8-static``: ``quant_pre_process`` then ``quantize_static`` (QDQ, per-channel
  weights) with a :class:`TextCalibrationReader` over calibration texts (corpus text by default:
  the same domain, no labels needed), MinMax ranges.

Every variant is checked against the fp32 PyTorch model on the parity texts (max |Δlogit|,
label agreement), as exports are.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from lmforge.compress.export import (
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    batched_logits,
    example_feeds,
    export_module_onnx,
    onnx_logits_fn,
    onnx_session,
    parity,
    quiet_tracing,
    torch_logits_fn,
    trace_module,
)
from lmforge.compress.folder import load_torch_classifier, logits_module, write_variant
from lmforge.compress.inputs import make_inputs
from lmforge.errors import LmforgeError

METHODS = ("torch-int8", "onnx-int8", "onnx-int8-static")
# Dynamic quantization: matrix products, embeddings and recurrent cells. Not Conv: ONNX Runtime's
# ConvInteger ran 2.7x slower than its fp32 Conv on our TextCNN (docs/benchmarks_compress.md).
DYNAMIC_OPS = ("MatMul", "Gemm", "Gather", "Attention", "LSTM")
# Static quantization touches only the matrix products: quantizing every activation (the
# attention mask's huge negative bias, LayerNorm and softmax outputs) wrecks a transformer.
STATIC_OPS = ("MatMul", "Gemm", "Conv")


class TextCalibrationReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over texts, in length-sorted batches."""

    def __init__(self, encode, texts: list[str], input_names: list[str], batch_size: int = 8):
        order = np.argsort([len(t) for t in texts], kind="stable")
        self.batches = [
            [texts[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)
        ]
        self.encode, self.names, self.pos = encode, input_names, 0

    def get_next(self):
        if self.pos >= len(self.batches):
            return None
        feeds = self.encode(self.batches[self.pos])
        self.pos += 1
        return {n: feeds[n] for n in self.names}

    def rewind(self):
        self.pos = 0


def quantize(
    model_dir: str | Path,
    out_dir: str | Path,
    method: str,
    parity_texts: list[str],
    calibration_texts: list[str] | None = None,
) -> dict:
    """Quantize the PyTorch folder ``model_dir`` with ``method`` into ``out_dir``; parity record."""
    import torch

    if method not in METHODS:
        raise LmforgeError(f"unknown quantization {method!r}: use one of {', '.join(METHODS)}")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, meta, spec = load_torch_classifier(model_dir)
    module = logits_module(model, spec)
    encode = make_inputs(model_dir, spec)
    feeds = example_feeds(encode)
    reference = batched_logits(torch_logits_fn(module), encode, parity_texts)
    out_dir.mkdir(parents=True, exist_ok=True)
    step: dict = {"kind": method}
    if method == "torch-int8":
        with quiet_tracing():  # the quantized-tensor deprecation notice
            qmodule = torch.ao.quantization.quantize_dynamic(
                module, {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU}, dtype=torch.qint8
            )
        traced = trace_module(qmodule, feeds, spec["kind"])
        torch.jit.save(traced, str(out_dir / TORCHSCRIPT_FILE))
        fn = torch_logits_fn(torch.jit.load(str(out_dir / TORCHSCRIPT_FILE)))
        files, backend = [TORCHSCRIPT_FILE], "torchscript"
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_module_onnx(module, feeds, spec["kind"], Path(tmp) / "fp32.onnx")
            prepped = _pre_process(fp32, Path(tmp) / "prepped.onnx")
            target = out_dir / ONNX_FILE
            with quiet_tracing():
                if method == "onnx-int8":
                    quantize_dynamic(
                        str(prepped),
                        str(target),
                        weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(DYNAMIC_OPS),
                    )
                else:
                    if not calibration_texts:
                        raise LmforgeError("onnx-int8-static needs calibration texts")
                    _quantize_static(prepped, target, encode, calibration_texts)
                    step["calibration_texts"] = len(calibration_texts)
        fn = onnx_logits_fn(onnx_session(out_dir / ONNX_FILE))
        files, backend = [ONNX_FILE], "onnx"
    check = parity(reference, batched_logits(fn, encode, parity_texts))
    check["against"] = "pytorch fp32"
    write_variant(out_dir, model_dir, meta, spec, backend, files, {"step": step, "parity": check})
    return check


def _pre_process(fp32: Path, prepped: Path) -> Path:
    """ONNX Runtime's recommended pre-processing: graph optimisation + ONNX shape inference
    (its symbolic shape inference cannot follow ``min(128, sequence)`` and is skipped)."""
    import logging

    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.getLogger().setLevel(logging.ERROR)
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    return prepped


def _quantize_static(prepped: Path, target: Path, encode, texts: list[str]) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    session = onnx_session(prepped)
    names = [i.name for i in session.get_inputs()]
    del session
    quantize_static(
        str(prepped),
        str(target),
        TextCalibrationReader(encode, texts, names),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=list(STATIC_OPS),
        extra_options={"ActivationSymmetric": True},
    )
