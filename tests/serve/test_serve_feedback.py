"""POST /v1/feedback: the label a text should have had, stored beside its prediction (masked),
behind the same key as /v1/classify; refused, never lost, when it cannot be stored."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from lmforge.serve import ServeSettings, create_app
from lmforge.serve.feedback import FEEDBACK_TABLE
from lmforge.serve.store import TABLE

KEY = {"X-API-Key": "k"}


def _select(db, table) -> list[dict]:
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        return [
            dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).mappings()
        ]


def test_feedback_round_trip(nb_dir, tmp_path, wait_ready):
    db = tmp_path / "p.sqlite"
    app = create_app(nb_dir, ServeSettings(prediction_log=str(db), api_keys=("k",)))
    text = "客服电话13812345678一直打不通，质量还行"
    with TestClient(app) as c:
        wait_ready(c)
        r = c.post("/v1/classify", json={"texts": [text]}, headers=KEY)
        request_id, given = r.headers["x-request-id"], r.json()["results"][0]["label"]
        wrong = "neg" if given == "pos" else "pos"
        body = {"request_id": request_id, "text": text, "label": wrong}
        assert c.post("/v1/feedback", json=body).status_code == 401  # same auth as classify
        r = c.post("/v1/feedback", json=body, headers=KEY)
        assert r.status_code == 201 and r.json()["stored"] is True
        assert (
            c.post("/v1/feedback", json={"text": "好", "label": "pos"}, headers=KEY).status_code
            == 201
        )
        bad = c.post("/v1/feedback", json={"text": "好", "label": "meh"}, headers=KEY)
        assert bad.status_code == 422 and "not one of" in bad.json()["error"]
        assert c.post("/v1/feedback", json={"label": "pos"}, headers=KEY).status_code == 422
        assert app.state.serve.prediction_log.flush(10)
    prediction = _select(db, TABLE)[0]
    feedback = _select(db, FEEDBACK_TABLE)
    assert [f["label"] for f in feedback] == [wrong, "pos"]
    # beside the prediction: the same request id joins them; the text is masked in both
    assert feedback[0]["request_id"] == prediction["request_id"] == request_id
    assert feedback[0]["text"] == prediction["text"] == "客服电话<PHONE>一直打不通，质量还行"
    assert b"13812345678" not in db.read_bytes()


def test_feedback_without_a_store_is_refused(nb_dir, wait_ready):
    with TestClient(create_app(nb_dir, ServeSettings())) as c:
        wait_ready(c)
        r = c.post("/v1/feedback", json={"text": "好", "label": "pos"})
    assert r.status_code == 503 and "--prediction-log" in r.json()["detail"]
