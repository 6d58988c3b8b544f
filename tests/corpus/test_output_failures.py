"""A full or read-only output disk: one line on stderr, a non-zero exit, no ``*.tmp`` file
left behind, and the same command resumes once the disk is fixed."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _helpers import run_lmforge
from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus
from lmforge.errors import LmforgeError


def make_config(inputs: Path) -> CorpusConfig:
    # light: two phases (a global step between them), none of the slow filters
    steps = [{"type": "normalize"}, {"type": "length"}, {"type": "exact_dedup"}]
    return CorpusConfig(sources=[{"type": "files", "paths": [str(inputs)]}], steps=steps)


def temp_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.tmp"))


@pytest.fixture
def disk_fills_up(monkeypatch):
    """Every Parquet write after the first `after` ones fails as a full disk does."""
    state = {"after": 10**9, "calls": 0}
    original = pq.ParquetWriter.write_table

    def write_table(self, table, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] > state["after"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)
    return state


def test_disk_full_mid_build_is_one_error_no_temp_files_and_rerun_resumes(
    sharded_inputs, tmp_path, disk_fills_up
):
    config = make_config(sharded_inputs)
    reference = build_corpus(config, tmp_path / "ref", LocalExecutor(1))
    writes_in_a_full_build = disk_fills_up["calls"]
    out = tmp_path / "out"
    disk_fills_up["calls"], disk_fills_up["after"] = 0, 8  # a few ranks finish, then full
    with pytest.raises(LmforgeError) as info:
        build_corpus(config, out, LocalExecutor(1))
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message
    assert str(out) in message  # names the file it could not write
    assert temp_files(out) == []
    finished = sorted((out / "_work" / "phase0").glob("done-*.json"))
    assert finished, "no rank finished before the disk filled up"

    disk_fills_up["calls"], disk_fills_up["after"] = 0, 10**9  # space again: the same call
    resumed = build_corpus(config, out, LocalExecutor(1))
    assert disk_fills_up["calls"] < writes_in_a_full_build  # finished ranks were not redone
    assert resumed["output_hash"] == reference["output_hash"]
    assert resumed["counts"] == reference["counts"]
    assert temp_files(out) == []


def test_disk_full_from_the_cli_is_one_line_and_exit_2(
    sharded_inputs, tmp_path, disk_fills_up, monkeypatch, capsys
):
    from lmforge import cli

    disk_fills_up["calls"], disk_fills_up["after"] = 0, 3
    out = tmp_path / "out"
    argv = ["lmforge", "corpus", "build", "--input", str(sharded_inputs), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", [*argv, "--workers", "1"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "No space left on device" in err
    assert temp_files(out) == []


# --- a real full / read-only file system (tmpfs), where this machine lets us mount one


def _mount(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    return result.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], capture_output=True)


def _cli_build(inputs: Path, out: Path) -> subprocess.CompletedProcess:
    args = ("corpus", "build", "--input", inputs, "--out", out, "--workers", "2")
    return run_lmforge(*args, timeout=300, LMFORGE_PROGRESS="0")


@pytest.mark.slow  # three default-step builds (~50 s on 2 busy cores)
def test_real_full_tmpfs_then_resume(sharded_inputs, tmp_path):
    default_steps = CorpusConfig(sources=[{"type": "files", "paths": [str(sharded_inputs)]}])
    reference = build_corpus(default_steps, tmp_path / "ref", LocalExecutor(1))
    disk = tmp_path / "disk"
    if not _mount(disk, "size=96k"):
        pytest.skip(
            "mounting a tmpfs is not permitted here (needs root in a sandbox that allows it)"
        )
    try:
        out = disk / "corpus"
        full = _cli_build(sharded_inputs, out)
        assert full.returncode == 2, full.stderr
        assert len(full.stderr.strip().splitlines()) == 1, full.stderr
        assert "No space left on device" in full.stderr and "Traceback" not in full.stderr
        assert temp_files(out) == []
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        again = _cli_build(sharded_inputs, out)
        assert again.returncode == 0, again.stderr
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["output_hash"] == reference["output_hash"]
    finally:
        _umount(disk)


def test_real_read_only_tmpfs(sharded_inputs, tmp_path):
    disk = tmp_path / "ro"
    if not _mount(disk, "size=1m,ro"):
        pytest.skip(
            "mounting a tmpfs is not permitted here (needs root in a sandbox that allows it)"
        )
    try:
        result = _cli_build(sharded_inputs, disk / "corpus")
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Read-only file system" in result.stderr and "Traceback" not in result.stderr
    finally:
        _umount(disk)
