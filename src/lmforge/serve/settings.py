"""Everything ``lmforge serve`` can be told, as one pydantic model (CLI flags map onto it)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: comma-separated API keys read when none are given on the command line
API_KEYS_ENV = "LMFORGE_API_KEYS"
ADMIN_KEYS_ENV = "LMFORGE_ADMIN_KEYS"


class ServeSettings(BaseModel):
    """Limits, batching, auth and logging of one served model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- limits ------------------------------------------------------------------------------
    max_texts: int = Field(64, ge=1, description="texts per /v1/classify request")
    max_chars: int = Field(2000, ge=1, description="characters per text")
    on_long_text: Literal["truncate", "reject"] = Field(
        "truncate", description="a longer text is cut (and flagged) or answered with 413"
    )
    max_body_bytes: int = Field(1_000_000, ge=1, description="request body size")
    request_timeout_s: float = Field(30.0, gt=0, description="per request, queue wait included")
    # -- micro-batching ----------------------------------------------------------------------
    max_batch: int = Field(64, ge=1, description="texts per model call")
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="how long a batch waits to fill; 0: run as soon as the model is free "
        "(batches still form from the requests that arrive while it is busy)",
    )
    model_batch: int | None = Field(
        None,
        ge=1,
        description="texts per backend call within a gathered batch (sorted by length); "
        "None: max_batch. Some backends run fastest on small batches (int8 ONNX: ~8)",
    )
    # -- auth --------------------------------------------------------------------------------
    api_keys: tuple[str, ...] = Field((), description="accepted keys; empty: no auth")
    admin_keys: tuple[str, ...] = Field(
        (), description="keys for /admin/* (X-Admin-Key); empty: no admin routes"
    )
    # -- monitoring --------------------------------------------------------------------------
    prediction_log: str | None = Field(
        None, description="SQLAlchemy URL or SQLite file path for the prediction log; None: off"
    )
    prediction_log_queue: int = Field(10_000, ge=1, description="log rows held before dropping")
    log_mask_pii: bool = Field(
        True,
        description="mask phone, ID-card, bank-card numbers, e-mails, URLs and IPs in logged "
        "texts (lmforge.corpus.pii) before they are stored; False stores the raw text",
    )
    log_retention_days: float | None = Field(
        None, gt=0, description="the server deletes logged rows older than this; None: keep"
    )
    log_retention_rows: int | None = Field(
        None, ge=1, description="the server keeps only the newest N logged rows; None: all"
    )
    drift_window: int = Field(1000, ge=1, description="recent predictions in the drift gauge")
    shadow: str | None = Field(
        None,
        description="a candidate (registry version or classifier folder) that scores the same "
        "texts off the response path; /metrics reports its agreement with the live model",
    )
    shadow_queue: int = Field(
        1000, ge=1, description="answered requests held for the shadow before new ones are dropped"
    )
    shadow_sample: float = Field(
        1.0,
        gt=0,
        le=1,
        description="share of answered requests the shadow scores (evenly spread); lower it "
        "when the candidate's CPU time slows the live model",
    )
    # -- model -------------------------------------------------------------------------------
    backend: str | None = Field(None, description="Predictor backend; None: the folder's own")
    backend_options: dict[str, str | int | float | bool] = Field(
        {}, description="passed to the backend as keyword arguments (e.g. threads=1 for ONNX)"
    )
    max_new_tokens: int = Field(256, ge=1, description="largest max_new_tokens for /v1/generate")
    trust_model_code: bool = Field(
        False, description="allow folders that run the code they hold (TorchScript)"
    )


def api_keys_from_env(environ: dict | None = None, name: str = API_KEYS_ENV) -> tuple[str, ...]:
    """Keys from ``$LMFORGE_API_KEYS`` (or ``name``; comma-separated, blanks ignored)."""
    raw = (environ if environ is not None else os.environ).get(name, "")
    return tuple(k.strip() for k in raw.split(",") if k.strip())
