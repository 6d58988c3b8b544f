"""Shadow mode: a candidate version scores the same texts off the response path. Live answers
are byte-identical with and without it, a candidate that raises or stalls costs the live side
nothing (its work is counted as errors or drops), and the agreement /metrics reports is the one
computed offline on the same real reviews."""

from __future__ import annotations

import re
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient

from lmforge.classify.estimator import make_model
from lmforge.predictor import Predictor
from lmforge.serve import ServeSettings, create_app
from lmforge.serve.registry import Registry


@pytest.fixture(scope="module")
def registry(serve_reviews, tmp_path_factory):
    """v1: Naive Bayes on 600 real reviews (served); v2: logistic regression on character
    n-grams of the same reviews (a real candidate that disagrees on some texts)."""
    train_x, train_y, _, _ = serve_reviews
    reg = Registry.create(tmp_path_factory.mktemp("registry") / "reviews")
    for name, spec in (("v1", "nb"), ("v2", "lr:features=char")):
        folder = tmp_path_factory.mktemp(name)
        make_model(spec).fit(train_x, train_y).save(folder)
        reg.add(folder, version=name, activate=False)
    reg.activate("v1")
    return reg


def _shadow_samples(client) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        m = re.match(r"^(lmforge_shadow_\w+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def _serve(app, texts, wait_ready, per_request=5, when_ready=None):
    """Every response body (bytes) for ``texts`` in requests of ``per_request``, with the app's
    shadow scorer drained (everything queued scored), its shadow samples and /v1/models."""
    with TestClient(app) as c:
        wait_ready(c)
        if when_ready is not None:
            when_ready()
        bodies = []
        for i in range(0, len(texts), per_request):
            r = c.post("/v1/classify", json={"texts": texts[i : i + per_request]})
            assert r.status_code == 200, r.text
            bodies.append(r.content)
        state = app.state.serve
        if state.shadow is not None:
            state.shadow.drain()
        return bodies, _shadow_samples(c), c.get("/v1/models").json()


def test_live_answers_are_identical_and_agreement_is_the_offline_one(
    registry, serve_reviews, wait_ready
):
    texts = serve_reviews[2][:200]
    plain, none, models = _serve(create_app(registry.root, ServeSettings()), texts, wait_ready)
    assert none == {} and models["shadow"] is None  # no shadow: no shadow series at all
    app = create_app(registry.root, ServeSettings(shadow="v2"))
    shadowed, samples, models = _serve(app, texts, wait_ready)
    assert shadowed == plain  # byte for byte: the shadow never touches a live response

    live = [a.label for a in Predictor.load(registry.path("v1")).predict(texts)]
    candidate = [a.label for a in Predictor.load(registry.path("v2")).predict(texts)]
    offline = sum(a == b for a, b in zip(live, candidate, strict=True)) / len(texts)
    assert 0.5 < offline < 1.0  # a real candidate: mostly agrees, not always
    assert samples["lmforge_shadow_agreement"] == pytest.approx(offline)
    assert samples['lmforge_shadow_texts_total{outcome="scored"}'] == len(texts)
    assert samples["lmforge_shadow_agreed_texts_total"] == round(offline * len(texts))
    assert samples['lmforge_shadow_texts_total{outcome="dropped"}'] == 0
    assert samples['lmforge_shadow_texts_total{outcome="error"}'] == 0
    shadow = models["shadow"]
    assert shadow["version"] == "v2" and shadow["scored"] == len(texts)
    assert shadow["agreement"] == pytest.approx(offline)
    assert models["models"][0]["version"] == "v1"


def test_a_shadow_identical_to_live_agrees_on_everything(registry, serve_reviews, wait_ready):
    texts = serve_reviews[2][:60]
    app = create_app(registry.root, ServeSettings(shadow="v1"))
    _, samples, models = _serve(app, texts, wait_ready, per_request=7)
    assert samples["lmforge_shadow_agreement"] == 1.0
    assert samples['lmforge_shadow_texts_total{outcome="scored"}'] == len(texts)
    assert models["shadow"]["version"] == "v1"


def test_a_shadow_folder_outside_the_registry(registry, nb_dir, serve_reviews, wait_ready):
    """--shadow takes a plain classifier folder too (a plain folder served)."""
    texts = serve_reviews[2][:20]
    app = create_app(registry.path("v2"), ServeSettings(shadow=str(nb_dir)))
    _, samples, models = _serve(app, texts, wait_ready)
    assert samples['lmforge_shadow_texts_total{outcome="scored"}'] == len(texts)
    assert models["shadow"]["name"] == "nb"


def test_a_shadow_that_raises_never_affects_a_live_response(registry, serve_reviews, wait_ready):
    texts = serve_reviews[2][:50]
    plain, _, _ = _serve(create_app(registry.root, ServeSettings()), texts, wait_ready)
    broken = Predictor.load(registry.path("v2"))

    def fail(batch):
        raise RuntimeError("the candidate's backend crashed")

    def break_it():  # after its warm-up: a candidate that fails its warm-up is not started
        broken.backend.predict_proba = fail

    app = create_app(registry.root, ServeSettings(shadow="v2"), shadow=broken)
    shadowed, samples, models = _serve(app, texts, wait_ready, when_ready=break_it)
    assert shadowed == plain
    assert samples['lmforge_shadow_texts_total{outcome="error"}'] == len(texts)
    assert samples['lmforge_shadow_texts_total{outcome="scored"}'] == 0
    assert models["shadow"]["errors"] == len(texts) and models["shadow"]["agreement"] is None


def test_a_stalled_shadow_drops_and_counts_and_never_delays(registry, serve_reviews, wait_ready):
    """A candidate stuck on its first call: the queue (2 requests) fills, later work is dropped
    and counted, and every live request is answered meanwhile."""
    texts = serve_reviews[2][:40]
    stalled = Predictor.load(registry.path("v2"))
    release, entered = threading.Event(), threading.Event()
    real = stalled.backend.predict_proba

    def stall(batch):
        entered.set()
        release.wait(30)
        return real(batch)

    settings = ServeSettings(shadow="v2", shadow_queue=2)
    app = create_app(registry.root, settings, shadow=stalled)
    with TestClient(app) as c:
        wait_ready(c)
        stalled.backend.predict_proba = stall  # warmed up; from here on the candidate stalls
        start = time.monotonic()
        for i in range(0, len(texts), 4):  # 10 requests of 4 texts
            assert c.post("/v1/classify", json={"texts": texts[i : i + 4]}).status_code == 200
            if i == 0:
                assert entered.wait(10)  # the first request is in the candidate's hands
        answered_in = time.monotonic() - start
        dropped = _shadow_samples(c)['lmforge_shadow_texts_total{outcome="dropped"}']
        release.set()
        app.state.serve.shadow.drain()
        samples = _shadow_samples(c)
    assert answered_in < 10  # not held up by the candidate's 30 s stall
    # 1 request being scored + 2 queued; the other 7 requests (28 texts) dropped
    assert dropped == 28
    assert samples['lmforge_shadow_texts_total{outcome="scored"}'] == 12
    assert samples['lmforge_shadow_texts_total{outcome="dropped"}'] == 28


def test_an_unknown_shadow_stops_the_start_in_one_line(registry, monkeypatch, capsys):
    import uvicorn

    from lmforge.cli import main

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kw: started.append(args))
    argv = ["lmforge", "serve", str(registry.root), "--port", "0", "--shadow", "v9"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and not started
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--shadow v9" in err and "v1" in err


def test_the_cli_passes_the_loaded_shadow_to_the_app(registry, monkeypatch):
    import uvicorn

    from lmforge.cli import main

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    argv = ["lmforge", "serve", str(registry.root), "--port", "0", "--shadow", "v2"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    shadow = apps[0].state.serve._shadow_model
    assert shadow is not None and shadow.version == "v2"


def test_a_sample_scores_an_even_share_of_requests(registry, serve_reviews, wait_ready):
    """--shadow-sample 0.1: every tenth request, exactly (a stride, not a coin toss)."""
    texts = serve_reviews[2][:50]
    app = create_app(registry.root, ServeSettings(shadow="v2", shadow_sample=0.1))
    _, samples, models = _serve(app, texts, wait_ready, per_request=1)
    assert samples['lmforge_shadow_texts_total{outcome="scored"}'] == 5
    assert samples['lmforge_shadow_texts_total{outcome="dropped"}'] == 0
    assert models["shadow"]["scored"] == 5
