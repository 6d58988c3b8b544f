"""A recipe cannot make lmforge write or delete outside its runs folder, and a run never deletes
a folder lmforge did not create; pretraining with a raised budget continues its checkpoint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from _helpers import run_lmforge
from lmforge.errors import LmforgeError
from lmforge.run.recipe import load_recipe


def write_recipe(path: Path, docs: Path, runs: Path, **sections) -> Path:
    recipe = {
        "name": "small",
        "runs_dir": str(runs),
        "corpus": {"sources": [{"type": "files", "paths": [str(docs)]}], "workers": 1},
        **sections,
    }
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture()
def docs(tmp_path: Path, review_sample: list[dict], news_sample: list[str]) -> Path:
    path = tmp_path / "docs.jsonl"
    records = review_sample[:150] + review_sample[-150:] + [{"text": t} for t in news_sample]
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def run_cli(recipe: Path) -> subprocess.CompletedProcess:
    return run_lmforge("run", recipe, timeout=600)


@pytest.mark.parametrize("name", ["..", ".", "/tmp/elsewhere", "a/../..", "../x", ""])
def test_a_run_name_must_be_a_folder_inside_runs_dir(tmp_path: Path, docs: Path, name: str):
    path = write_recipe(tmp_path / "r.yaml", docs, tmp_path / "runs")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump(data | {"name": name}), encoding="utf-8")
    with pytest.raises(LmforgeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "name" in message and "runs_dir" in message and "\n" not in message


def test_a_run_folder_that_is_a_link_to_elsewhere_is_refused(tmp_path: Path, docs: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "small").symlink_to(elsewhere)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", docs, tmp_path / "runs"))
    with pytest.raises(LmforgeError, match="outside"):
        recipe.run_dir()


def test_a_stage_folder_lmforge_did_not_create_is_never_deleted(tmp_path: Path, docs: Path):
    # the tokenizer stage rebuilds runs/small/tokenizer; a folder of the user's there survives
    mine = tmp_path / "runs" / "small" / "tokenizer"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my own notes", encoding="utf-8")
    recipe = write_recipe(tmp_path / "r.yaml", docs, tmp_path / "runs", tokenizer={})
    result = run_cli(recipe)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refusing to delete" in result.stderr and "Traceback" not in result.stderr
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "my own notes"


@pytest.mark.slow
def test_raising_the_pretraining_budget_continues_the_checkpoint(tmp_path: Path, docs: Path):
    pretrain = {
        "objective": "mlm",
        "preset": "tiny",
        "max_steps": 2,
        "max_minutes": None,
        "batch_size": 8,
        "seq_len": 64,
        "eval_every": 2,
        "save_every": 2,
        "warmup_steps": 1,
    }
    sections = {"tokenizer": {"vocab_size": 2000}, "pack": {"val_fraction": 0.05}}
    recipe = write_recipe(
        tmp_path / "r.yaml", docs, tmp_path / "runs", **sections, pretrain=pretrain
    )
    first = run_cli(recipe)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "runs" / "small" / "pretrain"
    log_before = (folder / "log.jsonl").read_text(encoding="utf-8").splitlines()

    write_recipe(tmp_path / "r.yaml", docs, tmp_path / "runs", **sections,
                 pretrain=pretrain | {"max_steps": 4})  # fmt: skip
    second = run_cli(recipe)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "continue" in second.stdout and "budget raised" in second.stdout
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["steps"] == 4
    log_after = (folder / "log.jsonl").read_text(encoding="utf-8").splitlines()
    # steps 1-2 are the first run's, kept as they were; only steps 3-4 are new
    assert log_after[: len(log_before)] == log_before
    assert json.loads(log_after[-1])["step"] == 4

    # a lower budget is not a continuation: the encoder is trained again from scratch
    write_recipe(tmp_path / "r.yaml", docs, tmp_path / "runs", **sections,
                 pretrain=pretrain | {"max_steps": 3})  # fmt: skip
    third = run_cli(recipe)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "budget raised" not in third.stdout
    assert json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["steps"] == 3
