"""The Ray executor on a local Ray (2 CPUs, a small object store): same bytes as the local
executor, a worker killed mid-rank is retried, a killed driver resumes without redoing ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

from _helpers import start_lmforge, wait_until
from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus
from lmforge.corpus.rank import RankTask, run_rank

# Ray would advertise this machine's network address; the tests keep every Ray process on
# loopback (read when ray is imported, inherited by its workers and by the CLI subprocesses).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'lmforge[ray]')")

from lmforge.corpus.config import RayExecutorConfig  # noqa: E402
from lmforge.corpus.executors.ray import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray start and three small builds: ~1 min on 2 cores


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False)
    # Test helpers below travel to the workers by value (tests/ is not importable there).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, review_sample: list[dict], news_sample: list[str]) -> Path:
    """Eight jsonl shards of real reviews and news; the last repeats 40 reviews of the first."""
    folder = tmp_path_factory.mktemp("inputs")
    records = review_sample + [{"text": t, "label": "news"} for t in news_sample]
    size = -(-len(records) // 8)
    for i in range(8):
        chunk = records[i * size : (i + 1) * size] + (review_sample[:40] if i == 7 else [])
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk)
        (folder / f"part-{i}.jsonl").write_text(lines, encoding="utf-8")
    return folder


def make_config(inputs: Path) -> CorpusConfig:
    return CorpusConfig(sources=[{"type": "files", "paths": [str(inputs)]}])


@pytest.fixture(scope="module")
def reference(inputs: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("local")
    return build_corpus(make_config(inputs), out, LocalExecutor(1))


class DieBeforeMarker:
    """run_rank, except that the first attempt at (phase, rank) kills its own worker process
    after the rank's files are committed and before its completion marker is written."""

    def __init__(self, flags: Path, phase: int, rank: int) -> None:
        self.flags, self.phase, self.rank = str(flags), phase, rank

    def __call__(self, task: RankTask) -> dict:
        flag = Path(self.flags) / f"died-{task.phase}-{task.rank}"
        if (task.phase, task.rank) != (self.phase, self.rank) or flag.exists():
            return run_rank(task)
        flag.write_text(str(os.getpid()))
        import lmforge.corpus.rank as rank_module

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        with mock.patch.object(rank_module, "write_json_atomic", die):
            return run_rank(task)


class RecordingRay(RayExecutor):
    """Remembers which (phase, rank) tasks it was given; can swap in another rank function."""

    def __init__(self, wrap=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.wrap = wrap
        self.ran: list[tuple[int, int]] = []

    def map(self, fn, tasks, description):
        if fn is run_rank:
            self.ran += [(t.phase, t.rank) for t in tasks]
            fn = self.wrap or fn
        return super().map(fn, tasks, description)


def test_ray_build_is_byte_identical_to_local(local_ray, inputs, reference, tmp_path) -> None:
    executor = RecordingRay(config=RayExecutorConfig(max_in_flight=3))
    manifest = build_corpus(make_config(inputs), tmp_path / "ray", executor)
    assert manifest["output_hash"] == reference["output_hash"]
    assert manifest["outputs"] == reference["outputs"]
    assert manifest["counts"] == reference["counts"]
    assert manifest["config_hash"] == reference["config_hash"]  # the executor is not in it
    assert manifest["executor"] == {
        "type": "ray",
        "address": "auto",
        "nodes": 1,
        "cpus": 2,
        "cpus_per_task": 1,
        "workers": 2,
    }
    assert reference["executor"] == {"type": "local", "nodes": 1, "workers": 1}
    assert sorted(executor.ran) == sorted((s, r) for s in range(3) for r in range(8))
    page = (tmp_path / "ray" / "report.html").read_text(encoding="utf-8")
    assert "Built by the ray executor on 1 node, 2 workers." in page


def test_worker_killed_mid_rank_is_retried_with_identical_output(
    local_ray, inputs, reference, tmp_path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    executor = RecordingRay(wrap=DieBeforeMarker(flags, phase=0, rank=2))
    manifest = build_corpus(make_config(inputs), tmp_path / "ray", executor)
    died = flags / "died-0-2"
    assert died.exists(), "the worker never died: the test tested nothing"
    assert manifest["output_hash"] == reference["output_hash"]
    assert manifest["counts"] == reference["counts"]


def test_driver_killed_mid_build_resumes_without_redoing_ranks(
    local_ray, inputs, reference, tmp_path
) -> None:
    out = tmp_path / "killed"
    address = local_ray.get_runtime_context().gcs_address
    proc = start_lmforge(
        "corpus", "build", "--input", inputs, "--out", out, "--executor", "ray",
        stderr=subprocess.PIPE, env={"RAY_ADDRESS": address},
    )  # fmt: skip
    phase0 = out / "_work" / "phase0"
    wait_until(lambda: len(list(phase0.glob("done-*.json"))) >= 2, 180, proc, interval=0.01)
    assert proc.poll() is None, f"the build ended before it could be killed: {proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = {int(p.stem.split("-")[1]) for p in phase0.glob("done-*.json")}
    assert 2 <= len(done) < 8 and not (out / "manifest.json").exists()
    time.sleep(1)  # Ray kills the dead driver's workers; let a rank they were writing stop

    executor = RecordingRay()
    manifest = build_corpus(make_config(inputs), out, executor)
    redone = {rank for phase, rank in executor.ran if phase == 0}
    assert redone and not (redone & done), f"finished ranks {sorted(redone & done)} were redone"
    assert manifest["output_hash"] == reference["output_hash"]
    assert manifest["counts"] == reference["counts"]


@pytest.fixture()
def two_nodes():
    """A simulated two-node cluster (two raylets, 1 CPU each) in place of the local Ray."""
    from ray.cluster_utils import Cluster

    ray.shutdown()  # this test runs last in the module: the fixture above is done with Ray
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * 1024**2},
    )
    worker = cluster.add_node(num_cpus=1, object_store_memory=80 * 1024**2)
    ray.init(address=cluster.address)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def test_node_removed_mid_build_finishes_with_identical_output(
    two_nodes, inputs, reference, tmp_path
) -> None:
    import threading

    cluster, worker = two_nodes
    out = tmp_path / "cluster"
    removed = threading.Event()

    def remove_after_first_rank() -> None:
        deadline = time.time() + 180
        while time.time() < deadline:
            if list((out / "_work" / "phase0").glob("done-*.json")):
                cluster.remove_node(worker, allow_graceful=False)
                removed.set()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=remove_after_first_rank, daemon=True)
    watcher.start()
    manifest = build_corpus(make_config(inputs), out, RayExecutor())
    watcher.join(timeout=5)
    assert removed.is_set(), "the node was never removed: the test tested nothing"
    assert manifest["executor"]["nodes"] == 2
    assert manifest["output_hash"] == reference["output_hash"]
    assert manifest["counts"] == reference["counts"]
