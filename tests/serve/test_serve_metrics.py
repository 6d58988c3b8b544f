"""/metrics: every series the issue asks for is there, and moves with traffic; label drift."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lmforge.serve import ServeSettings, create_app
from lmforge.serve.metrics import js_distance, training_label_distribution


def _samples(client) -> dict:
    """{(sample name, frozenset(labels)): value} from /metrics."""
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_are_present_and_move(nb_dir, serve_reviews, wait_ready):
    with TestClient(create_app(nb_dir, ServeSettings(max_chars=40))) as c:
        wait_ready(c)
        before = _samples(c)
        for name in (
            "lmforge_model_load_seconds",
            "lmforge_model_warmup_seconds",
            "lmforge_label_drift",
            "lmforge_queue_depth",
        ):
            assert any(key[0] == name for key in before), name
        assert _get(before, "lmforge_model_load_seconds") > 0
        assert _get(before, "lmforge_model_ready") == 1
        assert _get(before, "lmforge_predictions_total", label="neg") == 0  # shown from the start
        texts = serve_reviews[2][:12]
        answers = []
        for i in range(0, 12, 3):
            answers += c.post("/v1/classify", json={"texts": texts[i : i + 3]}).json()["results"]
        assert c.post("/v1/classify", json={"texts": 1}).status_code == 422
        after = _samples(c)

    route = {"route": "/v1/classify", "method": "POST"}
    assert _get(after, "lmforge_requests_total", **route, status="200") == 4
    assert _get(after, "lmforge_requests_total", **route, status="422") == 1
    assert _get(after, "lmforge_request_seconds_count", **route, status="200") == 4
    assert _get(after, "lmforge_request_seconds_sum", **route, status="200") > 0
    for label in ("neg", "pos"):
        n = sum(a["label"] == label for a in answers)
        assert _get(after, "lmforge_predictions_total", label=label) == n
    assert _get(after, "lmforge_input_chars_count") == 12
    assert _get(after, "lmforge_input_chars_sum") == sum(len(t) for t in texts)
    assert _get(after, "lmforge_truncated_total") == sum(len(t) > 40 for t in texts)
    assert _get(after, "lmforge_batch_size_sum") - _get(before, "lmforge_batch_size_sum") == 12
    assert _get(after, "lmforge_queue_wait_seconds_count") >= 4
    # drift: the served shares against the training ones, as a Jensen-Shannon distance
    served = [_get(after, "lmforge_label_share", label=x, window="all") for x in ("neg", "pos")]
    train = [_get(after, "lmforge_label_share", label=x, window="training") for x in ("neg", "pos")]
    assert served == pytest.approx(
        [sum(a["label"] == x for a in answers) / 12 for x in ("neg", "pos")]
    )
    assert _get(after, "lmforge_label_drift", window="all") == pytest.approx(
        js_distance(served, train)
    )


def test_drift_grows_when_one_label_dominates(nb_dir, wait_ready):
    with TestClient(create_app(nb_dir, ServeSettings(drift_window=50))) as c:
        wait_ready(c)
        for _ in range(5):
            c.post("/v1/classify", json={"texts": ["太差了，很失望，再也不买了"] * 10})
        samples = _samples(c)
    assert _get(samples, "lmforge_label_share", label="neg", window="recent") == 1.0
    assert _get(samples, "lmforge_label_drift", window="recent") > 0.5


def test_js_distance_and_training_distribution():
    assert js_distance([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([3, 1], [0.75, 0.25]) == pytest.approx(0.0, abs=1e-9)
    half = js_distance([1, 0], [0.5, 0.5])
    assert 0 < half < 1 and math.isclose(half, js_distance([0.5, 0.5], [1, 0]))
    meta = {"metrics": {"test": {"per_class": {"a": {"support": 30}, "b": {"support": 10}}}}}
    assert training_label_distribution(meta, ["a", "b"]) == (
        {"a": 0.75, "b": 0.25},
        "metrics.test.per_class.support",
    )
    explicit = {"label_distribution": {"a": 1, "b": 1}, **meta}
    assert training_label_distribution(explicit, ["a", "b"])[1] == "label_distribution"
    assert training_label_distribution({}, ["a", "b"])[0] == {"a": 0.5, "b": 0.5}


def test_label_drift_window_counts_follow_the_last_n():
    import random
    from collections import Counter

    from lmforge.serve.metrics import LabelDrift

    drift = LabelDrift(["neg", "pos"], {"neg": 0.5, "pos": 0.5}, window=7)
    served, rng = [], random.Random(0)
    for _ in range(40):  # batches of 0..4 labels, crossing the window many times
        batch = [rng.choice(["neg", "pos", "pos"]) for _ in range(rng.randrange(5))]
        drift.add(batch)
        served += batch
        last = Counter(served[-7:])
        n = sum(last.values())
        assert drift.shares("recent") == {k: (last[k] / n if n else 0.0) for k in ("neg", "pos")}
    assert drift.shares("all")["pos"] == pytest.approx(served.count("pos") / len(served))
