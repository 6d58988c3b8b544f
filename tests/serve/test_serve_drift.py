"""Input drift gauges: requests like the training data read as stable; long Korean texts sent
to a Chinese review model read as drifted (unknown characters, lengths)."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from lmforge.serve import ServeSettings, create_app
from lmforge.serve.registry import Registry

OFF_TOPIC = (
    "분기 보고서는 매출과 운영 비용, 다음 회계연도 전망을 다루며 환율 효과와 북부 지역의 "
    "새로운 물류 협력사에 대한 내용도 포함합니다. "
) * 3


def _gauges(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(lmforge_(?:input_\w+|confidence_\w+))(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_drift_gauges_tell_training_like_inputs_from_off_topic_ones(
    nb_dir, reviews_csv, serve_reviews, tmp_path, wait_ready
):
    reg = Registry.create(tmp_path / "reg")
    reg.add(nb_dir, data=str(reviews_csv))
    reference = json.loads((reg.path("v1") / "reference.json").read_text(encoding="utf-8"))
    assert len(reference["length_shares"]) == len(reference["length_edges"]) + 1
    test_x = serve_reviews[2]
    app = create_app(reg.root, ServeSettings(drift_window=100))
    with TestClient(app) as c:
        wait_ready(c)
        for i in range(0, 100, 20):  # reviews like the training ones
            c.post("/v1/classify", json={"texts": test_x[i : i + 20]})
        like = _gauges(c.get("/metrics").text)
        for i in range(5):  # off-topic: another script, much longer
            c.post("/v1/classify", json={"texts": [f"{OFF_TOPIC} #{i}.{j}" for j in range(20)]})
        off = _gauges(c.get("/metrics").text)
    recent, training = '{window="recent"}', '{window="training"}'
    assert like["lmforge_input_unknown_char_share" + recent] < 0.05
    assert like["lmforge_input_length_psi"] < 0.25
    assert off["lmforge_input_unknown_char_share" + recent] > 0.3
    assert off["lmforge_input_length_psi"] > 1.0
    assert off["lmforge_input_unknown_char_share" + training] == reference["unknown_char_share"]
    assert off["lmforge_confidence_mean" + training] == reference["confidence_mean"]
