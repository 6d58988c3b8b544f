"""``lmforge serve``: one-line errors, the settings reach each worker, and a real run (slow)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from _helpers import alive, children_of, free_port, start_lmforge, wait_until
from lmforge.cli import app
from lmforge.serve.app import MODEL_ENV, SETTINGS_ENV, app_from_env
from lmforge.serve.settings import ServeSettings

runner = CliRunner()


def test_user_errors_are_one_line(nb_dir, tmp_path):
    from lmforge.cli import main

    def run(*args):
        old = sys.argv
        sys.argv = ["lmforge", "serve", *map(str, args)]
        try:
            with pytest.raises(SystemExit) as exit_info:
                main()
        finally:
            sys.argv = old
        return exit_info.value.code

    assert run(tmp_path / "missing") == 2
    assert run(tmp_path) == 2  # a folder, but no model in it
    assert run(nb_dir, "--on-long-text", "cut") == 2
    assert run(nb_dir, "--max-batch", "0") == 2
    assert run(nb_dir, "--backend-option", "threads") == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert run(nb_dir, "--port", busy.getsockname()[1]) == 2


def test_cli_hands_settings_to_the_workers(nb_dir, monkeypatch):
    import uvicorn

    import lmforge.commands.serve as serve_command
    from lmforge.serve.lifeline import PARENT_ENV

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: seen.update(kw, target=target))
    # x=on is not an option the native backend takes: keep the start-up load out of this test
    monkeypatch.setattr(serve_command, "preload", lambda *args: None)
    monkeypatch.setenv("LMFORGE_API_KEYS", "from-env")
    for name in (MODEL_ENV, SETTINGS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(PARENT_ENV, "")  # removed again after the test
    args = ["serve", str(nb_dir), "--port", "0", "--workers", "3", "--max-batch", "16"]
    args += ["--model-batch", "4", "--backend-option", "threads=1", "--backend-option", "x=on"]
    result = runner.invoke(app, [*args, "--on-long-text", "reject", "--prediction-log", "p.db"])
    assert result.exit_code == 0, result.output
    assert seen["target"] == "lmforge.serve.app:app_from_env" and seen["factory"]
    assert seen["workers"] == 3 and seen["host"] == "127.0.0.1"
    settings = ServeSettings.model_validate_json(os.environ[SETTINGS_ENV])
    assert settings.max_batch == 16 and settings.on_long_text == "reject"
    assert settings.model_batch == 4 and settings.backend_options == {"threads": 1, "x": "on"}
    assert settings.api_keys == ("from-env",) and settings.prediction_log == "p.db"
    served = app_from_env()  # what each worker builds
    assert served.state.serve.settings == settings
    assert served.state.serve.source == nb_dir.resolve()


def test_backend_options_reach_the_predictor(nb_dir, wait_ready, caplog):
    """The native backend takes no options: the load fails, the server log says why (not
    /readyz, which anyone can call: the exception names absolute paths), nothing crashes."""
    from fastapi.testclient import TestClient

    from lmforge.serve import create_app

    settings = ServeSettings(backend_options={"threads": 1})
    app = create_app(nb_dir, settings)
    with caplog.at_level("ERROR", logger="lmforge.serve"), TestClient(app) as c:
        wait_until(lambda: "failed" in c.get("/readyz").text, 10, interval=0.02)
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["detail"] == "model failed to load (the server log says why)"
    assert "backend 'native' takes no options" in caplog.text
    ok = ServeSettings(model_batch=4)
    with TestClient(create_app(nb_dir, ok)) as c:
        wait_ready(c)
        assert c.app.state.serve.model.batch_size == 4


def _answers(url: str) -> bool:
    """The server at ``url`` answers 200 (False while it is not listening yet)."""
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_a_real_server_process_shuts_down_cleanly(nb_dir):
    port = free_port()
    proc = start_lmforge(
        "serve", nb_dir, "--port", port, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _answers(f"{url}/readyz"), 120, proc, interval=0.2)
        r = httpx.post(f"{url}/v1/classify", json={"texts": ["质量很好"]})
        assert r.status_code == 200 and r.json()["results"][0]["label"] in ("neg", "pos")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    # uvicorn finishes its graceful shutdown, then re-raises the signal it caught
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out


def test_readyz_tells_clients_no_paths_or_exceptions(nb_dir, tmp_path, caplog):
    """A broken model folder: /readyz used to return the load exception, absolute paths and
    all, to anyone who asked."""
    import shutil

    from fastapi.testclient import TestClient

    from lmforge.serve import create_app

    broken = tmp_path / "secret-place" / "model"
    shutil.copytree(nb_dir, broken)
    (broken / "model.skops").write_bytes(b"not a skops archive")
    app = create_app(broken, ServeSettings())
    with caplog.at_level("ERROR", logger="lmforge.serve"), TestClient(app) as c:
        wait_until(lambda: "failed" in c.get("/readyz").text, 10, interval=0.02)
        r = c.get("/readyz")
    assert r.status_code == 503
    assert "secret-place" not in r.text and "skops" not in r.text
    assert r.json()["detail"] == "model failed to load (the server log says why)"
    assert str(broken) in caplog.text  # the operator still learns what and where


@pytest.fixture()
def broken_dir(nb_dir, tmp_path):
    """A classifier folder whose JSON is fine but whose weights cannot load."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(nb_dir, broken)
    (broken / "model.skops").write_bytes(b"not a skops archive")
    return broken


def test_a_model_that_cannot_load_stops_the_start_in_one_line(broken_dir, monkeypatch, capsys):
    """It used to start anyway: /healthz said ok forever while every request got 503."""
    import uvicorn

    from lmforge.cli import main

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kw: started.append(args))
    monkeypatch.setattr(sys, "argv", ["lmforge", "serve", str(broken_dir), "--port", "0"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and not started
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(broken_dir) in err.replace("\n", "")


def test_healthz_fails_once_the_model_failed_to_load(broken_dir):
    from fastapi.testclient import TestClient

    from lmforge.serve import create_app

    with TestClient(create_app(broken_dir, ServeSettings())) as c:
        for _ in range(500):
            if c.get("/readyz").json()["detail"] != "model is loading":
                break
            time.sleep(0.02)
        r = c.get("/healthz")
    assert r.status_code == 503 and "failed to load" in r.json()["detail"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_when_the_server_is_killed(nb_dir):
    """kill -9 of `lmforge serve --workers 2` used to leave both workers serving the port."""
    port = free_port()
    proc = start_lmforge(
        "serve", nb_dir, "--port", port, "--workers", "2",
        start_new_session=True,  # its own process group: the cleanup below reaches orphans too
    )  # fmt: skip
    try:
        # the workers answer: each has run the app factory (where the lifeline is set)
        healthz = f"http://127.0.0.1:{port}/healthz"
        assert wait_until(lambda: _answers(healthz), 120, proc, interval=0.2)
        workers = children_of(proc.pid)
        assert len(workers) >= 2
        proc.kill()  # SIGKILL: the parent gets no chance to stop its workers
        proc.wait(10)
        wait_until(lambda: not any(alive(w) for w in workers), 30, interval=0.2)
        assert not any(alive(w) for w in workers)
        with socket.socket() as s:  # and the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
