"""The prediction log: rows land in SQLite; a broken or full store never fails a response."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient

from lmforge.serve import ServeSettings, create_app
from lmforge.serve.store import TABLE, PredictionLog


def test_predictions_are_logged(nb_dir, tmp_path, wait_ready):
    db = tmp_path / "logs" / "predictions.sqlite"
    app = create_app(nb_dir, ServeSettings(prediction_log=str(db)))
    with TestClient(app) as c:
        wait_ready(c)
        r = c.post("/v1/classify", json={"texts": ["质量很好，物流也快", "太差了"]})
        request_id = r.headers["x-request-id"]
        assert app.state.serve.prediction_log.flush(10)
        metrics = c.get("/metrics").text
    assert 'lmforge_prediction_log_rows_total{outcome="written"} 2.0' in metrics
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {TABLE} ORDER BY id")).mappings().all()
    assert [row["text"] for row in rows] == ["质量很好，物流也快", "太差了"]
    assert [row["label"] for row in rows] == [x["label"] for x in r.json()["results"]]
    assert {row["request_id"] for row in rows} == {request_id}
    assert json.loads(rows[0]["probabilities"]) == r.json()["results"][0]["probabilities"]
    assert rows[0]["model"] == "nb" and rows[0]["created_at"] is not None


def test_a_broken_store_drops_and_counts_but_answers(nb_dir, tmp_path, wait_ready):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker}/predictions.sqlite"  # cannot be created
    app = create_app(nb_dir, ServeSettings(prediction_log=url))
    with TestClient(app) as c:
        wait_ready(c)
        for _ in range(3):
            assert c.post("/v1/classify", json={"texts": ["好", "差"]}).status_code == 200
        assert app.state.serve.prediction_log.flush(10)
        metrics = c.get("/metrics").text
    assert 'lmforge_prediction_log_rows_total{outcome="dropped"} 6.0' in metrics


def test_a_full_queue_drops_instead_of_blocking(tmp_path):
    store = PredictionLog(str(tmp_path / "x.sqlite"), max_queue=3)  # writer not started
    rows = [{"text": str(i), "label": "pos"} for i in range(5)]
    store.add(rows)
    assert store.dropped == 2
    store.start()
    assert store.flush(10)
    store.close()
    assert (store.written, store.dropped) == (3, 2)


def _stored_texts(db) -> list[str]:
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        return [r[0] for r in conn.execute(sa.text(f"SELECT text FROM {TABLE} ORDER BY id"))]


def test_one_unencodable_text_costs_no_other_row(serve_reviews, tmp_path):
    """A lone surrogate (valid in JSON: "\\ud800") in one client's text used to make the whole
    insert batch, up to 500 other clients' rows, drop."""
    texts = serve_reviews[0][:499]
    store = PredictionLog(str(tmp_path / "p.sqlite"))
    rows = [{"request_id": f"r{i}", "text": t, "label": "pos"} for i, t in enumerate(texts)]
    rows.insert(200, {"request_id": "bad", "text": "好\ud800评", "label": "pos"})
    store.add(rows)  # queued before the writer starts: one 500-row batch
    store.start()
    assert store.flush(10)
    store.close()
    assert (store.written, store.dropped) == (500, 0)
    stored = _stored_texts(tmp_path / "p.sqlite")
    assert stored[:200] + stored[201:] == texts
    assert stored[200] == "好\ufffd评"


def test_a_row_the_database_refuses_is_dropped_alone_and_counted(serve_reviews, tmp_path):
    texts = serve_reviews[0][:300]
    store = PredictionLog(str(tmp_path / "p.sqlite"))
    rows = [{"text": t, "label": "pos", "score": 0.5} for t in texts]
    rows[123]["score"] = object()  # the driver cannot bind it
    store.add(rows)
    store.start()
    assert store.flush(10)
    store.close()
    assert (store.written, store.dropped) == (299, 1)
    assert _stored_texts(tmp_path / "p.sqlite") == texts[:123] + texts[124:]


def test_an_outage_logs_counts_and_error_classes_never_the_texts(tmp_path, caplog):
    """SQLAlchemy's exception text holds the statement's parameters: logging it wrote every
    user's text to stderr, one line per failed batch."""
    db = tmp_path / "p.sqlite"
    store = PredictionLog(str(db))  # default: one warning a minute at most
    store.start()
    with sa.create_engine(f"sqlite:///{db}").begin() as conn:  # the store breaks under it
        conn.execute(sa.text(f"DROP TABLE {TABLE}"))
    secret = "我的手机号是13812345678"
    with caplog.at_level("WARNING", logger="lmforge.serve.store"):
        for i in range(20):  # 20 separate failing batches
            store.add([{"text": f"{secret} #{i}", "label": "pos"}])
            assert store.flush(10)
        during = len(caplog.records)
        store.close()
    assert (store.written, store.dropped) == (0, 20)
    assert secret not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    assert during == 1  # the first drop, then quiet for log_every_s
    # closing reports the rest: every drop is accounted for, by error class
    assert [r.getMessage() for r in caplog.records] == [
        "prediction log: 1 rows dropped (OperationalError: 1); total dropped 1",
        "prediction log: 19 rows dropped (OperationalError: 19); total dropped 20",
    ]
