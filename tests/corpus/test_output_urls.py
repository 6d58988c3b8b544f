"""Corpus output at an fsspec URL (memory:// here; S3 in test_output_s3.py), and temp names
unique per attempt: a retried rank never shares a temp file with a stale attempt, and the temp
files a killed attempt left are removed when the rank is redone."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest

from _helpers import output_test_config
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.markers import load_marker
from lmforge.corpus.pipeline import build_corpus
from lmforge.corpus.plan import Layout, config_hash, config_key
from lmforge.corpus.rank import RankRun, RankTask, docs_to_table, run_rank
from lmforge.corpus.sources import plan_shards, read_shard


class RecordingExecutor(LocalExecutor):
    """The local executor, in this process, remembering which (phase, rank) it ran."""

    def __init__(self) -> None:
        super().__init__(1)
        self.ran: list[tuple[int, int]] = []

    def map(self, fn, tasks, description):
        self.ran += [(t.phase, t.rank) for t in tasks if isinstance(t, RankTask)]
        return super().map(fn, tasks, description)


def memory_url() -> str:
    return f"memory://lmforge-tests/{uuid.uuid4().hex}/corpus"


def remote_files(url: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(url)
    return sorted(p[len(root) + 1 :] for p in fs.find(root))


def test_memory_url_output_equals_a_local_build(sharded_inputs: Path, tmp_path: Path) -> None:
    config = output_test_config(sharded_inputs)
    local = build_corpus(config, tmp_path / "local", LocalExecutor(1))
    url = memory_url()
    remote = build_corpus(config, url, LocalExecutor(1))
    assert remote["output_hash"] == local["output_hash"]
    assert remote["outputs"] == local["outputs"] and remote["counts"] == local["counts"]
    files = remote_files(url)
    assert {"manifest.json", "stats.json", "report.html"} <= set(files)
    assert [f for f in files if f.startswith("data/")] == sorted(local["outputs"])
    assert not [f for f in files if f.startswith("_work/") or f.endswith(".tmp")]
    # the same bytes as the local build, file by file (not only the hash of their hashes)
    for name in local["outputs"]:
        with fsspec.open(f"{url}/{name}", "rb") as f:
            assert f.read() == (tmp_path / "local" / name).read_bytes()
    # a second run finds the finished corpus at the URL and does nothing
    again = RecordingExecutor()
    assert build_corpus(config, url, again)["output_hash"] == local["output_hash"]
    assert again.ran == []


def test_memory_url_resume_redoes_only_unfinished_ranks(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    config = output_test_config(sharded_inputs)
    reference = build_corpus(config, tmp_path / "ref", LocalExecutor(1))
    url = memory_url()
    shards = plan_shards(config.sources)
    # An interrupted build: ranks 0 and 3 of phase 0 finished (markers at the URL), rank 1 was
    # killed after its temp upload started, rank 2 after writing its files but before its marker.
    for rank in (0, 2, 3):
        run_rank(RankTask(config_key(config), url, 0, rank, shards[rank]))
    fs, root = fsspec.core.url_to_fs(url)
    fs.rm_file(f"{root}/_work/phase0/done-00002.json")
    stale = f"{root}/_work/phase0/docs-00001.parquet.4242-deadbeef.tmp"
    fs.pipe_file(stale, b"PAR1 half an upload")
    executor = RecordingExecutor()
    resumed = build_corpus(config, url, executor)
    assert resumed["output_hash"] == reference["output_hash"]
    assert resumed["counts"] == reference["counts"]
    phase0 = sorted(rank for phase, rank in executor.ran if phase == 0)
    assert phase0 == [r for r in range(len(shards)) if r not in (0, 3)]  # 0, 3 not redone
    assert not fs.exists(stale)
    assert not [f for f in remote_files(url) if f.endswith(".tmp")]


def test_stale_temp_files_are_removed_when_the_rank_is_redone(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    config = output_test_config(sharded_inputs)
    out = tmp_path / "out"
    # what killed attempts left: an old-style name and one unique to its attempt
    (out / "data").mkdir(parents=True)
    (out / "data" / "part-00001.parquet.tmp").write_bytes(b"PAR1 half")
    (out / "data" / "part-00002.jsonl.4242-deadbeef.tmp").write_text('{"id": "x"', "utf-8")
    manifest = build_corpus(config, out, LocalExecutor(1))
    assert manifest["counts"]["kept"] > 0
    assert sorted(out.rglob("*.tmp")) == []


def test_a_stale_attempt_never_writes_into_the_retried_ranks_files(
    sharded_inputs: Path, tmp_path: Path
) -> None:
    """A rank's worker is presumed dead and the rank is retried, but the old attempt still runs
    (a partitioned node, a slow kill). With one shared temp name the retry would commit the
    very file the stale attempt still has open, and the stale attempt's next write (here its
    abort, which closes its Parquet writer and so writes a footer) would land in the final
    file."""
    config = output_test_config(sharded_inputs)
    out = tmp_path / "out"
    shards = plan_shards(config.sources)
    task = RankTask(config_key(config), str(out), 0, 0, shards[0])
    stale = RankRun(task)
    records = list(itertools.islice(read_shard(shards[0], config.sources[0]), 50))
    docs = stale.run_steps(stale.read_batch(records))
    stale.emit(docs_to_table(docs), docs)  # the stale attempt has written a row group
    run_rank(task)  # the retry runs to completion
    layout = Layout(out)
    finished = {p: p.read_bytes() for p in (layout.phase_docs(0, 0), layout.phase_sigs(0, 0))}
    stale.abort()  # the stale attempt gives up
    for path, data in finished.items():
        assert path.read_bytes() == data, f"{path.name} changed under the finished rank"
    assert load_marker(layout, 0, 0) is not None
    assert sorted(out.rglob("*.tmp")) == []


def test_a_missing_output_driver_is_one_line_naming_the_extra(
    monkeypatch, capsys, sharded_inputs: Path
) -> None:
    from lmforge import cli as cli_module

    registry = sys.modules["fsspec.registry"]
    monkeypatch.setitem(sys.modules, "s3fs", None)  # not installed, whatever this machine has
    monkeypatch.delitem(registry._registry, "s3", raising=False)
    args = ["corpus", "build", "--input", str(sharded_inputs), "--out", "s3://bucket/corpus"]
    monkeypatch.setattr(sys, "argv", ["lmforge", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "output folder s3://bucket/corpus" in err and "pip install 'lmforge[s3]'" in err


def test_a_memory_output_refuses_the_ray_executor(sharded_inputs: Path) -> None:
    from lmforge.corpus.executors.ray import RayExecutor
    from lmforge.errors import LmforgeError

    with pytest.raises(LmforgeError, match="memory:// output needs the local executor"):
        build_corpus(output_test_config(sharded_inputs), memory_url(), RayExecutor())


@pytest.mark.skipif(
    bool({"HADOOP_HOME", "ARROW_LIBHDFS_DIR"} & set(os.environ)),
    reason="an HDFS client is set up here: the driver would try to reach the name node",
)
def test_hdfs_output_without_java_is_one_line(sharded_inputs: Path) -> None:
    url = "hdfs://namenode/corpus"
    result = subprocess.run(
        [sys.executable, "-m", "lmforge.cli", "corpus", "build", "--input", str(sharded_inputs)]
        + ["--out", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, LMFORGE_PROGRESS="0"),
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"cannot open output folder {url}" in result.stderr
    assert "Traceback" not in result.stderr


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from lmforge import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["lmforge", *args])
    try:
        cli_module.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_recipes_output_path_is_where_corpus_build_writes_and_run_refuses_it(
    monkeypatch, capsys, sharded_inputs: Path, tmp_path: Path
) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMFORGE_PROGRESS", "0")
    target = tmp_path / "elsewhere" / "corpus"
    recipe = tmp_path / "r.yaml"
    corpus = output_test_config(sharded_inputs).model_dump(
        mode="json", exclude={"executor", "workers"}
    )
    corpus["output"]["path"] = f"file://{target}"
    recipe.write_text(yaml.safe_dump({"name": "r", "corpus": corpus}), encoding="utf-8")
    code, out, err = run_cli(monkeypatch, capsys, "corpus", "build", str(recipe), "--workers", "1")
    assert code == 0, err
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["kept"] > 0 and not (tmp_path / "runs" / "r" / "corpus").exists()
    # where the output goes is not part of the config: the same corpus, the same hash
    assert manifest["config_hash"] == config_hash(output_test_config(sharded_inputs))
    code, out, err = run_cli(monkeypatch, capsys, "run", str(recipe))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "corpus.output.path" in err, err
