"""``POST /v1/feedback``: a user says which label a text should have had.

Stored beside the prediction, in the prediction log's database (table ``lmforge_feedback``:
id, created_at, request_id, text, label, model, version), with the same PII masking. Needs the
prediction log (``--prediction-log``); without it the route answers 503, so feedback is never
accepted and then lost. The write happens before the answer: 201 means it is stored.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)

FEEDBACK_TABLE = "lmforge_feedback"


def feedback_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        FEEDBACK_TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("request_id", sa.String(64), index=True),
        sa.Column("text", sa.Text),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("version", sa.String(100)),
    )


class FeedbackRequest(BaseModel):
    # the OpenAPI schema says what the validator below checks: a request_id or a text, non-empty
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["request_id"],
                    "properties": {"request_id": {"type": "string", "minLength": 1}},
                },
                {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
            ]
        },
    )
    request_id: str | None = Field(
        None, max_length=64, description="the X-Request-ID of the classify call"
    )
    text: str | None = Field(None, max_length=100_000, description="the text the label is for")
    label: str = Field(max_length=200, description="the label the text should have had")

    @model_validator(mode="after")
    def _one_key(self):
        if not self.request_id and not self.text:
            raise ValueError("give request_id, text or both")
        return self


class FeedbackResponse(BaseModel):
    id: int
    stored: bool = True


def add_feedback_route(app: FastAPI, state, guarded: list, errors: dict) -> None:
    from lmforge.serve.store import storable

    @app.post(
        "/v1/feedback",
        status_code=201,
        response_model=FeedbackResponse,
        dependencies=guarded,
        responses={401: errors[401], 503: errors[503]},
        summary="the label a text should have had (stored beside its prediction)",
    )
    async def feedback(body: FeedbackRequest):
        state.require_ready()
        store = state.prediction_log
        if store is None:
            raise HTTPException(503, "feedback needs the prediction log (--prediction-log)")
        model = state.model
        if body.label not in model.labels:
            # the same 422 shape as any invalid field (the app's validation handler writes it)
            msg = f"{body.label!r} is not one of the model's labels {model.labels}"
            raise RequestValidationError(
                [{"loc": ("body", "label"), "msg": msg, "type": "value_error"}]
            )
        row = {
            "created_at": datetime.now(timezone.utc),
            "request_id": body.request_id,
            "text": storable(body.text) if body.text is not None else None,
            "label": body.label,
            "model": model.name,
            "version": model.version,
        }
        try:
            row_id = await asyncio.to_thread(store.add_feedback, row)
        except Exception as exc:
            log.warning("feedback not stored (%s)", type(exc).__name__)
            raise HTTPException(503, "feedback not stored: the store is unavailable") from None
        state.metrics.log_rows.labels(outcome="feedback").inc()
        return JSONResponse({"id": row_id, "stored": True}, 201)
