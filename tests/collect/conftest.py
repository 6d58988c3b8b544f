"""A local HTTP server on 127.0.0.1 (http.server in a thread) whose routes each test sets,
counting the requests per path; and the stores every store test runs on: SQLite always,
a real MariaDB when its server binary is installed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from _helpers import free_port

Response = tuple[int, dict[str, str], bytes]
Route = Callable[[str], Response] | Response | list


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        key = parts.path + (f"?{parts.query}" if parts.query else "")
        srv = self.server
        with srv.lock:
            srv.requests[key] += 1
            srv.agents.add(self.headers.get("User-Agent", ""))
            srv.auth.add(self.headers.get("Authorization", ""))
            route = srv.routes.get(key, srv.routes.get(parts.path))
            if isinstance(route, list):  # a sequence of responses, the last one repeats
                route = route.pop(0) if len(route) > 1 else route[0]
        if route is None:
            status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
        elif callable(route):
            response = route(key)
            if response is None:  # the route chose not to answer: close without a response
                self.close_connection = True
                return
            status, headers, body = response
        else:
            status, headers, body = route
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)
            self.wfile.flush()
            with srv.lock:
                srv.served[key] += 1  # responses delivered (a request may get none)

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.agents: set[str] = set()
        self.auth: set[str] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def mariadb_url(tmp_path_factory):
    """A MariaDB server on a loopback port for this session (skipped when not installed)."""
    binary = shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None
    )
    installer = shutil.which("mariadb-install-db")
    if binary is None or installer is None:
        pytest.skip("mariadbd not installed (apt-get install mariadb-server); SQLite tested")
    pytest.importorskip("pymysql", reason="PyMySQL not installed (pip install 'lmforge[mysql]')")
    root = tmp_path_factory.mktemp("mariadb")
    datadir = root / "data"
    setup = subprocess.run(
        [installer, "--no-defaults", f"--datadir={datadir}", "--user=root", "--skip-test-db"],
        capture_output=True,
        text=True,
    )
    if setup.returncode != 0:
        pytest.skip(f"mariadb-install-db failed: {setup.stderr.strip()[-200:]}")
    port = free_port()
    sock = root / "sock"
    proc = subprocess.Popen(
        [binary, "--no-defaults", f"--datadir={datadir}", f"--socket={sock}", f"--port={port}"]
        + ["--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables"]
        + ["--innodb-buffer-pool-size=32M", "--skip-log-bin"],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "err.log", "w"),  # noqa: SIM115
    )
    import pymysql

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="root")
            conn.cursor().execute("CREATE DATABASE IF NOT EXISTS lmforge_test")
            conn.close()
            break
        except pymysql.err.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = Path(root / "err.log").read_text()[-300:]
                pytest.skip(f"mariadbd did not start: {log}")
            time.sleep(0.2)
    yield f"mysql+pymysql://root@127.0.0.1:{port}/lmforge_test?charset=utf8mb4"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(params=["sqlite", "mariadb"])
def store_url(request, tmp_path):
    """Each store test runs on SQLite and on a real MariaDB (skipped without its binary)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collect.sqlite'}"
    url = request.getfixturevalue("mariadb_url")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:  # a clean database per test
        for table in ("records", "cursors", "frontier"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    return url
