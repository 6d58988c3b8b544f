"""A corpus built to s3:// on a real S3 API: moto's server on a free 127.0.0.1 port (nothing
beyond loopback), through s3fs. Skipped, with the reason, when moto or s3fs is not installed
(``pip install -e '.[dev,s3]'``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest

from _helpers import free_port, output_test_config
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus
from lmforge.corpus.plan import config_key
from lmforge.corpus.rank import RankTask, run_rank
from lmforge.corpus.sources import plan_shards


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("s3fs", reason="the [s3] extra (s3fs) is not installed")
    server = pytest.importorskip(
        "moto.server", reason="moto (dev extra: moto[s3], flask, flask-cors) is not installed"
    )
    port = free_port()
    moto = server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    yield f"http://127.0.0.1:{port}"
    moto.stop()


@pytest.fixture()
def s3(s3_endpoint, monkeypatch):
    """(s3fs file system, a new empty bucket); s3:// URLs in this process and its children
    reach the moto server."""
    import s3fs

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FSSPEC_S3_ENDPOINT_URL": s3_endpoint,  # what a user sets for MinIO, Ceph, ...
        "NO_PROXY": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3_endpoint})
    s3fs.S3FileSystem.clear_instance_cache()
    fs = fsspec.filesystem("s3")
    bucket = f"lmforge-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    yield fs, bucket
    s3fs.S3FileSystem.clear_instance_cache()


def keys(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(p[len(prefix) + 1 :] for p in fs.find(prefix))


@pytest.mark.slow  # ~11 s on 2 cores: two builds and a resume through moto
def test_s3_build_equals_local_and_resume_redoes_only_unfinished_ranks(
    s3, sharded_inputs: Path, tmp_path: Path
) -> None:
    fs, bucket = s3
    config = output_test_config(sharded_inputs)
    local = build_corpus(config, tmp_path / "local", LocalExecutor(1))

    # 1. A whole build to s3://, two worker processes: the same bytes as the local build.
    remote = build_corpus(config, f"s3://{bucket}/x", LocalExecutor(2))
    assert remote["output_hash"] == local["output_hash"] and remote["counts"] == local["counts"]
    stored = keys(fs, f"{bucket}/x")
    assert {"manifest.json", "stats.json", "report.html"} <= set(stored)
    assert [k for k in stored if k.startswith("data/")] == sorted(local["outputs"])
    assert not [k for k in stored if k.startswith("_work/") or k.endswith(".tmp")]
    for name in local["outputs"]:
        assert fs.cat_file(f"{bucket}/x/{name}") == (tmp_path / "local" / name).read_bytes()
    manifest = json.loads(fs.cat_file(f"{bucket}/x/manifest.json"))
    assert manifest["output_hash"] == local["output_hash"]

    # 2. An interrupted build: ranks 0 and 3 of phase 0 finished; rank 2 wrote its files but
    # its marker is gone (killed before it, or removed); the others never ran.
    url = f"s3://{bucket}/y"
    shards = plan_shards(config.sources)
    for rank in (0, 2, 3):
        run_rank(RankTask(config_key(config), url, 0, rank, shards[rank]))
    fs.rm_file(f"{bucket}/y/_work/phase0/done-00002.json")
    ran: list[tuple[int, int]] = []

    class Recording(LocalExecutor):
        def map(self, fn, tasks, description):
            ran.extend((t.phase, t.rank) for t in tasks if isinstance(t, RankTask))
            return super().map(fn, tasks, description)

    resumed = build_corpus(config, url, Recording(2))
    assert resumed["output_hash"] == local["output_hash"]
    assert sorted(r for p, r in ran if p == 0) == [r for r in range(len(shards)) if r not in (0, 3)]
    assert not [k for k in keys(fs, f"{bucket}/y") if k.startswith("_work/")]


@pytest.mark.slow  # ~15 s: two CLI processes
def test_cli_builds_to_s3_and_reads_its_stats_back(s3, sharded_inputs: Path) -> None:
    fs, bucket = s3
    env = dict(os.environ, LMFORGE_PROGRESS="0")
    url = f"s3://{bucket}/cli/corpus"
    args = ["corpus", "build", "--input", str(sharded_inputs), "--out", url, "--workers", "2"]
    build = subprocess.run(
        [sys.executable, "-m", "lmforge.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert build.returncode == 0, build.stderr
    assert f"corpus: {url}" in build.stdout
    stats = subprocess.run(
        [sys.executable, "-m", "lmforge.cli", "corpus", "stats", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert stats.returncode == 0, stats.stderr
    manifest = json.loads(fs.cat_file(f"{bucket}/cli/corpus/manifest.json"))
    assert f"kept {manifest['counts']['kept']:,}" in stats.stdout


def test_a_missing_bucket_is_one_line(s3, sharded_inputs: Path, capsys, monkeypatch) -> None:
    from lmforge import cli as cli_module

    url = "s3://no-such-bucket-lmforge/corpus"
    args = ["corpus", "build", "--input", str(sharded_inputs), "--out", url, "--workers", "1"]
    monkeypatch.setattr(sys, "argv", ["lmforge", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"cannot write {url}/_work/plan.json" in err


@pytest.mark.slow  # a Ray start and a build: ~1 min on 2 cores
def test_ray_build_to_s3_equals_the_local_build(
    s3, sharded_inputs: Path, tmp_path: Path, monkeypatch
) -> None:
    """Ray workers are not forks of this process: they reach s3:// through the environment
    (FSSPEC_S3_ENDPOINT_URL, AWS_*), as on a cluster, and stage their files on their own disk."""
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on loopback only
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'lmforge[ray]')")
    from lmforge.corpus.executors.ray import RayExecutor

    fs, bucket = s3
    config = output_test_config(sharded_inputs)
    local = build_corpus(config, tmp_path / "local", LocalExecutor(1))
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False)
    try:
        remote = build_corpus(config, f"s3://{bucket}/ray", RayExecutor())
    finally:
        ray.shutdown()
    assert remote["output_hash"] == local["output_hash"]
    assert remote["executor"]["type"] == "ray"
    assert not [k for k in keys(fs, f"{bucket}/ray") if k.startswith("_work/")]


def test_no_credentials_is_one_line(monkeypatch, sharded_inputs: Path) -> None:
    s3fs = pytest.importorskip("s3fs", reason="the [s3] extra (s3fs) is not installed")
    from lmforge.errors import LmforgeError

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: no request leaves loopback
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with pytest.raises(LmforgeError) as info:
            build_corpus(output_test_config(sharded_inputs), "s3://bucket/corpus", LocalExecutor(1))
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot access s3://bucket/corpus/_work/plan.json: NoCredentials")
