"""Inputs that are not plain local files: fsspec URLs (memory://, http://, a missing or broken
driver) and FIFOs or sockets inside an input folder. A problem is one line or one counted
record; the build never hangs and never prints a traceback."""

from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import sys
import threading
from pathlib import Path

import fsspec
import pytest

from _helpers import run_lmforge
from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.executors.local import LocalExecutor
from lmforge.corpus.pipeline import build_corpus
from lmforge.corpus.sources import FileSource, plan_shards, read_shard
from lmforge.errors import LmforgeError

FEW_STEPS = [{"type": "normalize"}, {"type": "length", "min_chars": 2}, {"type": "exact_dedup"}]


def build(paths: list[str], out: Path) -> dict:
    config = CorpusConfig(sources=[{"type": "files", "paths": paths}], steps=FEW_STEPS)
    return build_corpus(config, out, LocalExecutor(1))


def removed_reasons(out: Path) -> dict[str, int]:
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    read = next(s for s in stats["steps"] if s["key"] == "read")
    return read["reasons"]


def test_fifo_and_socket_in_an_input_folder_are_skipped_and_counted(tmp_path, review_sample):
    folder = tmp_path / "in"
    folder.mkdir()
    texts = [r["text"] for r in review_sample[:30]]
    (folder / "a.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    os.mkfifo(folder / "b.txt")  # nobody ever writes to it: opening it would block forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "c.jsonl"))
    out = tmp_path / "out"
    result: dict = {}
    builder = threading.Thread(  # a hang must fail the test, not hang the suite
        target=lambda: result.update(build([str(folder)], out)), daemon=True
    )
    try:
        builder.start()
        builder.join(timeout=60)
    finally:
        server.close()
    assert not builder.is_alive(), "the build hung on a FIFO or socket"
    assert result["counts"]["read"] == len(texts) + 2
    assert removed_reasons(out).get("not_regular_file") == 2
    assert result["counts"]["read"] == result["counts"]["kept"] + result["counts"]["removed"]


def test_special_files_are_named_in_their_records(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    source = FileSource(paths=[str(tmp_path)], name="s")
    records: list = []

    def read_all() -> None:
        for shard in plan_shards([source]):
            records.extend(read_shard(shard, source))

    reader = threading.Thread(target=read_all, daemon=True)  # a hang must not hang the suite
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "reading a folder holding a FIFO blocked"
    (record,) = records
    assert (record.id, record.reason) == ("s/pipe.txt", "not_regular_file")
    assert f"{tmp_path / 'pipe.txt'}: a FIFO" in record.detail


def test_memory_urls_are_read(tmp_path, review_sample):
    texts = [r["text"] for r in review_sample[:40]]
    fs = fsspec.filesystem("memory")
    root = f"/lmforge-test-{os.getpid()}"
    fs.pipe(f"{root}/a.txt", "\n".join(texts[:20]).encode())
    fs.pipe(
        f"{root}/sub/b.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in texts[20:]).encode()
    )
    try:
        manifest = build([f"memory://{root}"], tmp_path / "out")
    finally:
        fs.rm(root, recursive=True)
    assert manifest["counts"]["read"] == 40
    assert manifest["counts"]["kept"] == len(set(texts))


@pytest.fixture
def http_folder(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_url_is_read_with_the_http_extra(http_folder, tmp_path, review_sample):
    pytest.importorskip("aiohttp", reason="the [http] extra (aiohttp) is not installed")
    folder, base = http_folder
    texts = [r["text"] for r in review_sample[:50]]
    (folder / "reviews.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    manifest = build([f"{base}/reviews.txt"], tmp_path / "out")
    assert manifest["counts"]["read"] == 50
    assert manifest["counts"]["kept"] == len(set(texts))
    assert manifest["inputs"][0]["path"] == f"{base}/reviews.txt"


def test_missing_http_file_is_a_one_line_error(http_folder):
    pytest.importorskip("aiohttp", reason="the [http] extra (aiohttp) is not installed")
    _, base = http_folder
    with pytest.raises(LmforgeError, match="input path not found: http://") as info:
        plan_shards([FileSource(paths=[f"{base}/nope.txt"])])
    assert "\n" not in str(info.value)


def run_cli_in_process(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from lmforge import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["lmforge", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    return exit_info.value.code, capsys.readouterr().err


def test_missing_driver_is_one_line_naming_the_extra(monkeypatch, capsys, tmp_path):
    registry = sys.modules["fsspec.registry"]  # (fsspec.registry is also a mapping's name)
    monkeypatch.setitem(sys.modules, "s3fs", None)  # not installed, whatever this machine has
    monkeypatch.delitem(registry._registry, "s3", raising=False)
    code, err = run_cli_in_process(
        monkeypatch,
        capsys,
        "corpus",
        "build",
        "--input",
        "s3://bucket/x.txt",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "s3://bucket/x.txt" in err and "pip install 'lmforge[s3]'" in err


class _BrokenFileSystem(fsspec.AbstractFileSystem):
    """A driver that prints from native code and fails to start, as pyarrow's HDFS does."""

    protocol = "lmforgebroken"

    def __init__(self, *args, **kwargs):
        os.write(2, b"dlopen(/usr/java/latest/libjvm.so) failed: no such file\n")
        raise OSError("Unable to load libjvm")


def test_driver_that_cannot_start_is_one_line(monkeypatch, capfd, tmp_path):
    fsspec.register_implementation("lmforgebroken", _BrokenFileSystem, clobber=True)
    from lmforge import cli as cli_module

    url = "lmforgebroken://namenode/data/x.txt"
    monkeypatch.setattr(
        sys, "argv", ["lmforge", "corpus", "build", "--input", url, "--out", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    err = capfd.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert url in err and "Unable to load libjvm" in err


@pytest.mark.skipif(
    bool({"HADOOP_HOME", "ARROW_LIBHDFS_DIR"} & set(os.environ)),
    reason="an HDFS client is set up here: the driver would try to reach the name node",
)
def test_hdfs_without_java_is_one_line(tmp_path):
    result = run_lmforge(
        "corpus", "build", "--input", "hdfs://namenode/x.txt", "--out", tmp_path / "o",
        timeout=120, LMFORGE_PROGRESS="0",
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "hdfs://namenode/x.txt" in result.stderr and "Traceback" not in result.stderr
