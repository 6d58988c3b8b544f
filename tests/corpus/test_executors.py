"""Choosing the executor: recipe section, --executor, clear errors without Ray or a cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors import make_executor
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.plan import config_hash
from lmforge.errors import LmforgeError


def config(**extra) -> CorpusConfig:
    return CorpusConfig(sources=[{"type": "files", "paths": ["x.txt"]}], **extra)


def test_recipe_names_the_executor_and_it_is_not_part_of_the_config_hash() -> None:
    from lmforge.corpus.executors.ray import RayExecutor

    local = config(workers=3)
    assert isinstance(make_executor(local), LocalExecutor) and make_executor(local).workers == 3
    ray_config = config(executor={"type": "ray", "address": "ray://head:10001", "cpus_per_task": 2})
    executor = make_executor(ray_config)  # does not connect yet
    assert isinstance(executor, RayExecutor) and executor.config.cpus_per_task == 2
    assert config_hash(ray_config) == config_hash(local)
    with pytest.raises(ValueError, match="executor"):
        config(executor={"type": "spark"})


def test_without_ray_installed_the_error_names_the_extra(monkeypatch) -> None:
    from lmforge.corpus.executors.ray import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(LmforgeError, match=r"pip install 'lmforge\[ray\]'"):
        RayExecutor().describe()


def test_unreachable_cluster_is_a_one_line_error_in_seconds(monkeypatch) -> None:
    pytest.importorskip("ray", reason="Ray is not installed")
    from lmforge.corpus.executors.ray import RayExecutor

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(LmforgeError, match="no Ray cluster at address 'auto'.*ray start --head"):
        RayExecutor().describe()


def test_cli_rejects_an_unknown_executor(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("一些文字\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["corpus", "build", "-i", str(tmp_path / "a.txt"), "--executor", "spark"]
    )
    assert isinstance(result.exception, LmforgeError)
    assert "--executor spark: expected one of local, ray" in str(result.exception)
