"""Serving a causal-LM folder: /v1/generate as JSON and as server-sent events."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from lmforge.generate import load_causal_lm, stream_text
from lmforge.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def clm_dir(tiny_clm_dir):
    return tiny_clm_dir


def _events(raw: str) -> list[tuple[str, dict]]:
    out = []
    for block in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields.get("event", "message"), json.loads(fields["data"])))
    return out


def test_generate_json_and_stream_match_the_library(clm_dir, wait_ready):
    model, tok = load_causal_lm(clm_dir)
    want = "".join(stream_text(model, tok, "人民日报", 12, temperature=0.8, seed=7))
    with TestClient(create_app(clm_dir, ServeSettings(max_new_tokens=20))) as c:
        wait_ready(c)
        body = {"prompt": "人民日报", "max_new_tokens": 12, "temperature": 0.8, "seed": 7}
        r = c.post("/v1/generate", json=body)
        assert r.status_code == 200 and r.json()["text"] == want
        with c.stream("POST", "/v1/generate", json=body | {"stream": True}) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            events = _events(s.read().decode())
        pieces = [data["text"] for kind, data in events if kind == "message"]
        assert len(pieces) > 1 and "".join(pieces) == want
        assert events[-1][0] == "done"
        r = c.post("/v1/generate", json=body | {"max_new_tokens": 21})
        assert r.status_code == 422 and r.json()["error"].startswith("body.max_new_tokens:")
        assert c.post("/v1/classify", json={"texts": ["好"]}).status_code == 404
        (info,) = c.get("/v1/models").json()["models"]
        assert info["kind"] == "causal_lm" and info["model_type"] == "llama"
        assert "lmforge_generated_pieces_total" in c.get("/metrics").text
