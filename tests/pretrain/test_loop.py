"""The pretraining loop end to end at tiny scale: output folders, resume, DDP, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.errors import LmforgeError
from lmforge.pretrain.loop import pretrain
from lmforge.pretrain.report import FIELDS, read_log

SMALL = {"batch_size": 8, "seq_len": 32, "warmup_steps": 2, "progress": False}


@pytest.fixture(scope="module")
def mlm_run(mlm_tokens, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mlm"
    manifest = pretrain(
        mlm_tokens,
        out,
        "mlm",
        "tiny",
        max_steps=6,
        eval_every=3,
        log_every=2,
        eval_batches=3,
        snapshot_steps=[3],
        **SMALL,
    )
    return out, manifest


def test_mlm_output_loads_with_auto_classes(mlm_run):
    out, manifest = mlm_run
    model = AutoModelForMaskedLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "BertForMaskedLM"
    logits = model(**tok("这个手机质量很好", return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size
    saved = json.loads((out / "manifest.json").read_text())
    assert (
        saved["steps"] == 6
        and saved["objective"] == "mlm"
        and saved["params"] == saved["preset_params"]
    )
    assert (
        saved["tokens_seen"] > 0
        and 0 <= saved["final_val_acc"] <= 1
        and saved["dtype"] in ("bf16", "fp32")
    )
    rows = read_log(out)
    assert [r["step"] for r in rows] == [2, 3, 4, 6] and set(rows[0]) == set(FIELDS)
    assert rows[1]["val_loss"] is not None and rows[0]["val_loss"] is None
    assert (out / "checkpoint" / "state.pt").is_file() and any((out / "tensorboard").iterdir())
    # the step-3 snapshot is a loadable folder with other weights than the final one
    snap = AutoModelForMaskedLM.from_pretrained(out / "snapshots" / "step-3")
    assert AutoTokenizer.from_pretrained(out / "snapshots" / "step-3").vocab == tok.vocab
    name = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(snap.state_dict()[name], model.state_dict()[name])


def test_fill_mask_cli_prints_fillers(mlm_run):
    result = CliRunner().invoke(
        app, ["fill-mask", str(mlm_run[0]), "这个手机[MASK]量很好", "--top-k", "3"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert len(lines) == 3 and all(0 <= float(line.split("\t")[1]) <= 1 for line in lines)


def test_clm_output_loads_and_generates(clm_tokens, tmp_path):
    from lmforge.generate import generate

    pretrain(clm_tokens, tmp_path / "clm", "clm", "tiny", max_steps=3, eval_every=3, **SMALL)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "clm")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert isinstance(generate(tmp_path / "clm", "这个", max_new_tokens=5, seed=0), str)


def test_resume_reproduces_the_uninterrupted_loss_curve(mlm_tokens, tmp_path):
    args = dict(
        max_steps=6, eval_every=3, log_every=1, save_every=2, eval_batches=2, dtype="fp32", **SMALL
    )
    pretrain(mlm_tokens, tmp_path / "a", "mlm", **args)
    assert pretrain(mlm_tokens, tmp_path / "b", "mlm", interrupt_at=5, **args) == {
        "interrupted_at": 5
    }
    pretrain(mlm_tokens, tmp_path / "b", "mlm", resume=True, **args)  # continues from step 4
    a, b = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b, strict=True):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-6)
        assert (ra["val_loss"] is None) == (rb["val_loss"] is None)
        if ra["val_loss"] is not None:
            assert ra["val_loss"] == pytest.approx(rb["val_loss"], abs=1e-6)
    wa = AutoModelForMaskedLM.from_pretrained(tmp_path / "a").state_dict()
    wb = AutoModelForMaskedLM.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    # resuming a finished run trains no extra step: same step count, same weights
    again = pretrain(mlm_tokens, tmp_path / "b", "mlm", resume=True, **args)
    assert again["steps"] == 6 and again["final_val_loss"] is not None
    assert [r["step"] for r in read_log(tmp_path / "b")] == list(range(1, 7))
    wc = AutoModelForMaskedLM.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.equal(wb[k], wc[k]) for k in wb)


def test_ddp_two_processes(mlm_tokens, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "lmforge.cli",
        "pretrain",
        str(mlm_tokens),
        "--out",
        str(out),
        "--max-steps",
        "3",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--eval-every",
        "3",
        "--warmup-steps",
        "1",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["steps"] == 3
    AutoModelForMaskedLM.from_pretrained(out)
    assert len(read_log(out)) == 1  # only rank 0 writes


def test_user_errors(tmp_path, mlm_tokens):
    with pytest.raises(LmforgeError, match="manifest.json"):
        pretrain(tmp_path, tmp_path / "o", max_steps=1)
    with pytest.raises(LmforgeError, match="no checkpoint"):
        pretrain(mlm_tokens, tmp_path / "o", max_steps=1, resume=True, progress=False)
    result = CliRunner().invoke(
        app, ["pretrain", str(mlm_tokens), "--out", str(tmp_path / "o"), "--preset", "huge"]
    )
    assert result.exit_code != 0 and isinstance(result.exception, LmforgeError)
