"""What the prediction log keeps: masked text (phone, ID card, e-mail never reach the store) and
no more than the retention limit allows."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from fastapi.testclient import TestClient

from lmforge.serve import ServeSettings, create_app
from lmforge.serve.store import TABLE, PredictionLog

PHONE, ID_CARD, EMAIL = "13812345678", "11010519491231002X", "zhang.san@example.com"


def _rows(db) -> list[dict]:
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        return [
            dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {TABLE} ORDER BY id")).mappings()
        ]


def test_pii_never_reaches_the_store(nb_dir, tmp_path, wait_ready):
    db = tmp_path / "p.sqlite"
    texts = [
        f"快递员打我电话{PHONE}，态度很差",
        f"实名登记用了身份证{ID_CARD}，入住很快，房间干净",
        f"发票请寄到 {EMAIL} 谢谢，质量不错",
        "质量很好，物流也快",
    ]
    app = create_app(nb_dir, ServeSettings(prediction_log=str(db)))
    with TestClient(app) as c:
        wait_ready(c)
        assert c.post("/v1/classify", json={"texts": texts}).status_code == 200
        assert app.state.serve.prediction_log.flush(10)
    stored = [r["text"] for r in _rows(db)]
    raw = (tmp_path / "p.sqlite").read_bytes()
    for secret in (PHONE, ID_CARD, EMAIL):
        assert secret.encode() not in raw  # not in any row, column or page of the file
    assert stored == [
        "快递员打我电话<PHONE>，态度很差",
        "实名登记用了身份证<ID_CARD>，入住很快，房间干净",
        "发票请寄到 <EMAIL> 谢谢，质量不错",
        "质量很好，物流也快",
    ]


def test_raw_text_only_when_asked(nb_dir, tmp_path, wait_ready):
    db = tmp_path / "p.sqlite"
    app = create_app(nb_dir, ServeSettings(prediction_log=str(db), log_mask_pii=False))
    with TestClient(app) as c:
        wait_ready(c)
        c.post("/v1/classify", json={"texts": [f"电话{PHONE}"]})
        assert app.state.serve.prediction_log.flush(10)
    assert [r["text"] for r in _rows(db)] == [f"电话{PHONE}"]


def test_the_server_enforces_retention_by_age_and_by_rows(tmp_path):
    db = tmp_path / "p.sqlite"
    old = datetime.now(timezone.utc) - timedelta(days=40)
    store = PredictionLog(str(db), retention_days=30, retention_rows=100, retention_every_s=0.05)
    store.add([{"text": f"old {i}", "label": "pos", "created_at": old} for i in range(30)])
    store.add([{"text": f"new {i}", "label": "pos"} for i in range(150)])
    store.start()
    assert store.flush(10)
    deadline = time.monotonic() + 10
    while len(_rows(db)) > 100 and time.monotonic() < deadline:
        time.sleep(0.05)  # the writer's own clock runs the retention rounds
    store.close()
    texts = [r["text"] for r in _rows(db)]
    assert texts == [f"new {i}" for i in range(50, 150)]  # the newest 100, none older than 30 d
    assert store.expired == 80 and store.written == 180
