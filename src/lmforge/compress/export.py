"""Export a PyTorch classifier to ONNX and TorchScript, and check each export against it.

ONNX: plain ``torch.onnx.export`` (the TorchScript-based exporter, ``dynamo=False``) of a small
wrapper that maps the two input tensors (``input_ids`` + ``attention_mask``, or ``ids`` +
``lengths``) to ``logits``, with dynamic batch and sequence axes -- nothing depends on an
exporter knowing named architectures. TorchScript: ``torch.jit.trace`` of the same wrapper.

The example input used for tracing is a padded batch: tracing records one path through
data-dependent Python branches (e.g. transformers skipping an all-ones attention mask), and the
padded path is the one that is right for every batch.

Parity (:func:`parity`): the export and the PyTorch model run the same test texts (batches of
32, sorted by length); max |Δlogit| and label agreement go to the folder's JSON (``parity``)
and are printed by ``lmforge compress``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lmforge.compress.folder import load_torch_classifier, logits_module, write_variant
from lmforge.compress.inputs import INPUT_NAMES, make_inputs

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.ts.pt"
OPSET = 17
EXAMPLE_TEXTS = ["质量很好，物流也快，下次还来买", "差", "a longer example text, 还行吧"]


@contextlib.contextmanager
def quiet_tracing():
    """Tracer / exporter warnings are expected here (the module docstring says why)."""
    from lmforge.classify.transformer import quiet_transformers

    with warnings.catch_warnings(), quiet_transformers():
        warnings.simplefilter("ignore")
        yield


def example_feeds(encode, texts=EXAMPLE_TEXTS) -> dict[str, np.ndarray]:
    feeds = encode(list(texts))
    first = next(iter(feeds.values()))
    assert first.shape[0] == len(texts)
    return feeds


def torch_logits_fn(module) -> Callable[[dict], np.ndarray]:
    import torch

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            args = [torch.from_numpy(v) for v in feeds.values()]
            return module(*args).float().numpy()

    return run


def batched_logits(fn, encode, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Logits of ``texts`` (input order) through ``fn(feeds)``, batches sorted by length."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        logits = fn(encode([texts[i] for i in idx]))
        if out is None:
            out = np.zeros((len(texts), logits.shape[1]), dtype=np.float64)
        out[idx] = logits
    return out if out is not None else np.zeros((0, 0))


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """max |Δlogit| and label agreement between two logit matrices of the same texts."""
    if len(reference) == 0:
        return {"n": 0, "max_abs_logit_diff": 0.0, "label_agreement": 1.0}
    diff = np.abs(np.asarray(reference) - np.asarray(candidate))
    agree = np.argmax(reference, axis=1) == np.argmax(candidate, axis=1)
    return {
        "n": int(len(reference)),
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "label_agreement": float(agree.mean()),
    }


def onnx_session(path: str | Path, threads: int = 0, providers: list[str] | None = None):
    """An ONNX Runtime session: CUDA provider first when present, then CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return ort.InferenceSession(str(path), options, providers=providers)


def onnx_logits_fn(session) -> Callable[[dict], np.ndarray]:
    names = [i.name for i in session.get_inputs()]  # an unused input (TextCNN's lengths) is dropped

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(["logits"], {n: feeds[n] for n in names})[0]

    return run


def export_module_onnx(module, feeds: dict[str, np.ndarray], kind: str, path: Path) -> Path:
    """``torch.onnx.export`` of a logits module with dynamic batch and sequence axes."""
    import torch

    names = list(INPUT_NAMES[kind])
    axes = {names[0]: {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}
    axes[names[1]] = {0: "batch", 1: "sequence"} if kind == "transformer" else {0: "batch"}
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    with quiet_tracing(), torch.inference_mode():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return path


def trace_module(module, feeds: dict[str, np.ndarray], kind: str):
    import torch

    args = tuple(torch.from_numpy(feeds[n]) for n in INPUT_NAMES[kind])
    with quiet_tracing(), torch.inference_mode():
        traced = torch.jit.trace(module, args, check_trace=False)
    return torch.jit.freeze(traced.eval())


def export(
    model_dir: str | Path,
    out_dir: str | Path,
    fmt: str,
    parity_texts: list[str],
    threads: int = 0,
) -> dict:
    """Export ``model_dir`` as ``fmt`` (``onnx`` / ``torchscript``) to ``out_dir``; parity checked.

    Returns the parity record (also stored in the folder's JSON).
    """
    import torch

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, meta, spec = load_torch_classifier(model_dir)
    module = logits_module(model, spec)
    encode = make_inputs(model_dir, spec)
    feeds = example_feeds(encode)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = batched_logits(torch_logits_fn(module), encode, parity_texts)
    if fmt == "onnx":
        export_module_onnx(module, feeds, spec["kind"], out_dir / ONNX_FILE)
        fn = onnx_logits_fn(onnx_session(out_dir / ONNX_FILE, threads))
        files, backend = [ONNX_FILE], "onnx"
    elif fmt == "torchscript":
        traced = trace_module(module, feeds, spec["kind"])
        torch.jit.save(traced, str(out_dir / TORCHSCRIPT_FILE))
        fn = torch_logits_fn(torch.jit.load(str(out_dir / TORCHSCRIPT_FILE)))
        files, backend = [TORCHSCRIPT_FILE], "torchscript"
    else:
        from lmforge.errors import LmforgeError

        raise LmforgeError(f"unknown export format {fmt!r}: use onnx or torchscript")
    check = parity(reference, batched_logits(fn, encode, parity_texts))
    check["against"] = "pytorch fp32"
    write_variant(
        out_dir,
        model_dir,
        meta,
        spec,
        backend,
        files,
        {"step": {"kind": f"export-{fmt}"}, "parity": check},
    )
    return check
