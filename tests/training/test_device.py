"""Device choice: auto / cpu / cuda; the GPU path runs where a GPU is (skipped here)."""

from __future__ import annotations

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.training import autocast, choose_dtype, resolve_device

NO_GPU = not torch.cuda.is_available()


def test_auto_takes_cuda_only_when_present_and_bad_names_are_user_errors():
    assert resolve_device("auto").type == ("cpu" if NO_GPU else "cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(LmforgeError, match="choose auto, cpu or cuda"):
        resolve_device("tpu")
    if NO_GPU:
        with pytest.raises(LmforgeError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert choose_dtype("cpu", "fp32") == ("fp32", "requested")
    with pytest.raises(LmforgeError, match="--dtype"):
        choose_dtype("cpu", "fp16")
    with autocast("cpu", "bf16"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled(
            "cpu"
        )


def test_cpu_models_report_their_device(sample):
    from lmforge.classify.estimator import make_model

    model = make_model("textcnn", epochs=1, embed_dim=16, hidden=16, max_len=32, device="cpu")
    model.fit(sample.train_texts[:64], sample.train_labels[:64])
    assert model.device_.type == "cpu" and next(model.model_.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU, reason="no CUDA GPU on this machine")
def test_training_steps_on_cuda(sample, tmp_path):
    from transformers import BertConfig

    from lmforge.classify.estimator import load_model, make_model
    from lmforge.predictor import Predictor

    x, y = sample.train_texts[:128], sample.train_labels[:128]
    cnn = make_model("textcnn", epochs=1, embed_dim=16, hidden=16, max_len=48, device="cuda")
    cnn.fit(x, y, X_val=sample.val_texts[:32], y_val=sample.val_labels[:32])
    assert next(cnn.model_.parameters()).is_cuda and cnn.history_[0]["tokens"] > 0
    BertConfig(
        vocab_size=600, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    ).save_pretrained(tmp_path / "cfg")  # fmt: skip
    enc = make_model(
        "transformer", init="none", config_from=str(tmp_path / "cfg"), vocab_size=600,
        max_len=48, epochs=1, batch_size=16, device="cuda",
    ).fit(x, y)  # fmt: skip
    assert next(enc.model_.parameters()).is_cuda
    assert enc.dtype_ == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    proba = enc.predict_proba(sample.test_texts[:20])
    assert proba.shape == (20, 2)
    enc.save(tmp_path / "enc")
    assert load_model(tmp_path / "enc").predict_proba(sample.test_texts[:20]).shape == (20, 2)
    cpu = Predictor.load(tmp_path / "enc", device="cpu").predict_proba(sample.test_texts[:20])
    assert abs(cpu - proba).max() < 0.05  # same weights, other device and precision


def test_auto_dtype_on_cpu_follows_the_hardware_not_a_timing(monkeypatch):
    """The same CPU gives the same dtype (and so the same model) however busy it is: the timing
    probe is consulted only where the CPU's flags cannot be read."""
    import lmforge.training.device as device

    def no_probe(*_args, **_kwargs):
        raise AssertionError("the matmul probe must not decide where the CPU flags are known")

    monkeypatch.setattr(device, "matmul_peak", no_probe)
    monkeypatch.setattr(device, "cpu_bf16_units", lambda: "AMX")
    assert device.choose_dtype("cpu")[0] == "bf16"
    monkeypatch.setattr(device, "cpu_bf16_units", lambda: "")
    assert device.choose_dtype("cpu")[0] == "fp32"
    monkeypatch.setattr(device, "cpu_bf16_units", lambda: None)
    monkeypatch.setattr(device, "matmul_peak", lambda _d, dtype: 5.0 if dtype == "bf16" else 1.0)
    assert device.choose_dtype("cpu")[0] == "bf16"


def test_a_peak_probed_on_a_busy_machine_is_raised_by_what_training_reached(monkeypatch, tmp_path):
    """MFU read 114 % in a default run: the cached matmul peak had been probed while another job
    ran. A trainer that goes faster raises the cached peak, and a re-probe never lowers it."""
    import torch

    from lmforge.training import device as dev

    monkeypatch.setattr(dev, "CACHE", tmp_path / "matmul_peak.json")
    cpu = torch.device("cpu")
    probed = dev.matmul_peak(cpu, "fp32")
    assert probed > 1e8  # a real measurement: more than 0.1 GFLOP/s
    assert dev.raise_peak(cpu, "fp32", probed / 2) == probed  # slower training: peak kept
    assert dev.raise_peak(cpu, "fp32", probed * 10) == probed * 10
    assert dev.matmul_peak(cpu, "fp32") == probed * 10  # cached for later runs
    assert dev.matmul_peak(cpu, "fp32", refresh=True) == probed * 10  # a re-probe cannot lower it
