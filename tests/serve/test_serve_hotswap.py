"""A registry folder served, then switched to another version under load: no request fails,
every response names one version and carries exactly that version's answers, and the answers
switch."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from lmforge.classify.estimator import make_model
from lmforge.predictor import Predictor
from lmforge.serve import ServeSettings, create_app
from lmforge.serve.registry import Registry

CLIENTS, REQUESTS_EACH = 32, 12


@pytest.fixture(scope="module")
def registry(serve_reviews, tmp_path_factory):
    """v1: Naive Bayes on real reviews; v2: the same texts with every label flipped (so the
    two versions disagree on almost every text, and a mixed response would show)."""
    train_x, train_y, _, _ = serve_reviews
    root = tmp_path_factory.mktemp("registry") / "reviews"
    reg = Registry.create(root)
    flipped = ["pos" if y == "neg" else "neg" for y in train_y]
    for name, labels in (("v1", train_y), ("v2", flipped)):
        folder = tmp_path_factory.mktemp(name)
        make_model("nb").fit(train_x, labels).save(folder)
        reg.add(folder, version=name, activate=False)
    reg.activate("v1")
    return reg


def test_registry_records_versions_with_metadata(registry):
    assert registry.versions() == ["v1", "v2"] and registry.current == "v1"
    meta = registry.metadata("v2")
    assert meta["version"] == "v2" and len(meta["data_hash"]) == 64 and meta["created"]


def test_hot_swap_under_32_concurrent_clients(registry, serve_reviews, live_server):
    texts = serve_reviews[2][:200]
    expected = {}
    for v in ("v1", "v2"):
        labels = [a.label for a in Predictor.load(registry.path(v)).predict(texts)]
        expected[v] = dict(zip(texts, labels, strict=True))
    texts = [t for t in texts if expected["v1"][t] != expected["v2"][t]][:60]
    assert len(texts) >= 30
    settings = ServeSettings(admin_keys=("admin-secret",), api_keys=("user-key",))
    app = create_app(registry.root, settings)
    with live_server(app) as (_, url):
        asyncio.run(_swap_under_load(url, texts, expected))


async def _swap_under_load(url: str, texts: list[str], expected: dict) -> None:
    user = {"X-API-Key": "user-key"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=user) as client:
        for _ in range(1500):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.02)
        # the admin route takes the admin key only
        assert (await client.post("/admin/reload", json={"version": "v2"})).status_code == 401
        responses: list[tuple[float, float, int, dict]] = []
        reloaded = asyncio.Event()
        swap_done: list[float] = []
        loop = asyncio.get_running_loop()

        async def one_client(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(REQUESTS_EACH):
                batch = rng.sample(texts, rng.randint(1, 4))
                start = loop.time()
                r = await client.post("/v1/classify", json={"texts": batch})
                responses.append((start, loop.time(), r.status_code, {"texts": batch} | r.json()))
                if len(responses) >= CLIENTS * REQUESTS_EACH // 3 and not reloaded.is_set():
                    reloaded.set()

        async def admin() -> None:
            await reloaded.wait()
            r = await client.post(
                "/admin/reload", json={"version": "v2"}, headers={"X-Admin-Key": "admin-secret"}
            )
            assert r.status_code == 200, r.text
            swap_done.append(loop.time())
            assert r.json()["models"][0]["version"] == "v2"

        await asyncio.gather(admin(), *(one_client(i) for i in range(CLIENTS)))
        models = (await client.get("/v1/models")).json()
    assert len(responses) == CLIENTS * REQUESTS_EACH
    assert all(status == 200 for _, _, status, _ in responses)  # zero failed requests
    seen = {"v1": 0, "v2": 0}
    for start, _, _, body in responses:
        version = body["version"]
        seen[version] += 1
        # one version per response, and that version's answer for every text in it
        assert [r["label"] for r in body["results"]] == [
            expected[version][t] for t in body["texts"]
        ]
        if start > swap_done[0]:
            assert version == "v2"  # once the switch is answered, the new version serves
    assert seen["v1"] > 0 and seen["v2"] > 0  # the answers switched
    assert models["models"][0]["version"] == "v2"
    assert [(v["version"], v["current"]) for v in models["versions"]] == [
        ("v1", False),
        ("v2", True),
    ]


def test_registry_cli_adds_lists_and_activates(nb_dir, reviews_csv, tmp_path):
    from typer.testing import CliRunner

    from lmforge.cli import app

    runner, root, data = CliRunner(), tmp_path / "reg", reviews_csv
    for _ in range(2):
        assert (
            runner.invoke(
                app, ["registry", "add", str(root), str(nb_dir), "--data", str(data)]
            ).exit_code
            == 0
        )
    assert runner.invoke(app, ["registry", "activate", str(root), "v1"]).exit_code == 0
    listed = runner.invoke(app, ["registry", "list", str(root)])
    assert listed.exit_code == 0 and "v1" in listed.output and "v2" in listed.output
    reg = Registry(root)
    assert (
        reg.current == "v1" and reg.metadata("v2")["data_hash"] == reg.metadata("v1")["data_hash"]
    )
    bad = runner.invoke(app, ["registry", "activate", str(root), "../x"])
    assert bad.exit_code != 0 and "no version" in str(bad.exception)
