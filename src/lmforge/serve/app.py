"""The HTTP app: :func:`create_app(model, settings) <create_app>` -> FastAPI.

``model`` is a loaded :class:`~lmforge.predictor.Predictor` (or :class:`CausalLM`), or a folder:
then the app loads and warms it in the background at startup, ``/healthz`` answers at once and
``/readyz`` (and the model routes) answer 503 until the model is ready. Routes:

- ``POST /v1/classify`` (classifier folders): texts -> label, score, probabilities, truncated;
  through the :class:`~lmforge.serve.batcher.MicroBatcher`;
- ``POST /v1/generate`` (causal-LM folders): JSON, or server-sent events with ``"stream": true``;
- with ``settings.shadow``, a candidate model scores the answered texts off the response path
  (:mod:`lmforge.serve.shadow`);
- ``GET /v1/models``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``GET /`` (web page);
- ``POST /admin/reload`` (only with admin keys; ``X-Admin-Key``): switch to a registry version
  (``{"version": "v2"}``, default the registry's current) or reload the folder, with no failed
  request (see :mod:`lmforge.serve.state`); SIGHUP does the same for a one-process server.

With API keys set, ``/v1/*`` needs ``X-API-Key: KEY`` or ``Authorization: Bearer KEY`` (401
otherwise); health, metrics and the page stay open. On shutdown the server stops accepting,
requests in flight finish (uvicorn waits for them), the batcher finishes what is queued, then
the prediction log writes what it holds.
"""

import asyncio
import gc
import json
import os
import secrets
import threading
from contextlib import asynccontextmanager
from importlib import resources

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmforge.serve.admin import add_admin_routes, reload_on_sighup
from lmforge.serve.batcher import BatcherClosed
from lmforge.serve.generation import CLASSIFIER, CausalLM
from lmforge.serve.middleware import ServeMiddleware
from lmforge.serve.schemas import (
    ClassifyResponse,
    ErrorResponse,
    GenerateResponse,
    HealthResponse,
    ModelsResponse,
    ValidationErrorResponse,
    classify_request_model,
    generate_request_model,
)
from lmforge.serve.settings import ServeSettings
from lmforge.serve.state import ServeState
from lmforge.serve.store import PredictionLog

#: ``lmforge serve`` passes the folder and settings to each uvicorn worker through these
MODEL_ENV = "LMFORGE_SERVE_MODEL"
SETTINGS_ENV = "LMFORGE_SERVE_SETTINGS"


def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with the standard ``detail`` list (loc, msg, type; the input is not echoed) and a
    one-line ``error`` naming the first bad field."""
    errors = []
    for e in exc.errors():
        loc = [p if isinstance(p, int) else str(p) for p in e.get("loc", ())]
        msg, kind = str(e.get("msg", "")), str(e.get("type", ""))
        if kind == "json_invalid":  # loc is ("body", character offset)
            reason = (e.get("ctx") or {}).get("error", "")
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            loc, msg = ["body"], f"invalid JSON{at}: {reason}".rstrip(": ")
        errors.append({"loc": loc, "msg": msg, "type": kind})
    first = errors[0] if errors else {"loc": ["body"], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return JSONResponse({"error": f"{where}: {first['msg']}", "detail": errors}, 422)


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI answers a body it cannot decode (not UTF-8, ...) with a bare 400; that is a
    malformed body like invalid JSON, so it gets the same 422 shape."""
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        cause = exc.__cause__
        reason = f"{type(cause).__name__}: {cause}" if cause else "cannot be parsed"
        msg = f"invalid JSON body: {reason}"
        detail = [{"loc": ["body"], "msg": msg, "type": "json_invalid"}]
        return JSONResponse({"error": f"body: {msg}", "detail": detail}, 422)
    return await http_exception_handler(request, exc)


def _auth_dependency(keys: tuple[str, ...], header_name: str = "X-API-Key"):
    header = APIKeyHeader(name=header_name, auto_error=False, description="a key")
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
    encoded = [k.encode() for k in keys]

    async def require_api_key(
        key: str | None = Security(header),
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> None:
        given = key or (credentials.credentials if credentials else None)
        if given is None:
            raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
        if not any(secrets.compare_digest(given.encode(), k) for k in encoded):
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})

    return require_api_key


def _pii_masker():
    """The corpus PII masker (every type on): what the prediction log stores is masked text."""
    from lmforge.corpus.pii import Pii

    return Pii().mask


def _page() -> str:
    return resources.files("lmforge.serve").joinpath("static/index.html").read_text("utf-8")


def create_app(model, settings: ServeSettings | None = None, source=None, shadow=None) -> FastAPI:
    """The app serving ``model`` (a Predictor, a CausalLM, a model folder or a registry folder)
    under ``settings``; ``source``: the folder or registry a loaded ``model`` came from;
    ``shadow``: the loaded ``settings.shadow`` candidate (else the app loads it)."""
    settings = settings or ServeSettings()
    state = ServeState(model, settings, source, shadow)
    metrics = state.metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.prediction_log and state.kind == CLASSIFIER:
            state.prediction_log = PredictionLog(
                settings.prediction_log,
                max_queue=settings.prediction_log_queue,
                on_outcome=lambda outcome, n: metrics.log_rows.labels(outcome=outcome).inc(n),
                mask=_pii_masker() if settings.log_mask_pii else None,
                retention_days=settings.log_retention_days,
                retention_rows=settings.log_retention_rows,
            )
            await asyncio.to_thread(state.prediction_log.start)
        loader = asyncio.create_task(state.load())
        hup = reload_on_sighup(state)
        try:
            yield
        finally:
            hup()
            if not loader.done():
                loader.cancel()
            if state.batcher is not None:
                await state.batcher.stop()  # finishes every queued request
            state.ready = False
            if state.shadow is not None:
                await asyncio.to_thread(state.shadow.close)
            if state.prediction_log is not None:
                await asyncio.to_thread(state.prediction_log.close)
            if state.frozen:
                gc.unfreeze()

    app = FastAPI(
        title="lmforge",
        summary="A served lmforge model",
        version="1",
        lifespan=lifespan,
        responses={422: {"model": ValidationErrorResponse, "description": "invalid request"}},
    )
    app.state.serve = state
    app.add_middleware(ServeMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    guarded = [Depends(_auth_dependency(settings.api_keys))] if settings.api_keys else []
    errors = {
        401: {"model": ErrorResponse, "description": "missing or invalid API key"},
        413: {"model": ErrorResponse, "description": "body or a text over the limits"},
        503: {"model": ErrorResponse, "description": "model loading or server shutting down"},
        504: {"model": ErrorResponse, "description": "not answered within the request timeout"},
    }
    page = _page()

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(
        "/healthz",
        response_model=HealthResponse,
        summary="the process is alive (503 once the model has failed to load: restart it)",
        responses={503: errors[503]},
    )
    async def healthz():
        if state.load_error is not None:
            raise HTTPException(503, "model failed to load (the server log says why)")
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=HealthResponse,
        summary="the model is loaded and warmed",
        responses={503: errors[503]},
    )
    async def readyz():
        state.require_ready()
        return {"status": "ready"}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        if state.batcher is not None:
            metrics.queue_depth.set(state.batcher.depth)
        state.input_drift.update()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get(
        "/v1/models",
        response_model=ModelsResponse,
        dependencies=guarded,
        responses={401: errors[401], 503: errors[503]},
        summary="the served model: name, version, labels, test metrics",
    )
    async def models():
        state.require_ready()
        info = state.info
        return {
            "models": [
                info
                | {
                    "kind": state.kind,
                    "test_metrics": {
                        k: float(v) for k, v in (info.get("test_metrics") or {}).items()
                    },
                    "training_label_distribution": state.training_distribution,
                    "training_label_distribution_source": state.training_source,
                    "load_seconds": state.model.load_seconds,
                    "ready": state.ready,
                }
            ],
            "versions": state.versions(),
            "shadow": state.shadow_info(),
        }

    if settings.admin_keys:
        add_admin_routes(app, state, errors, _auth_dependency(settings.admin_keys, "X-Admin-Key"))

    if state.kind == CLASSIFIER:
        from lmforge.serve.feedback import add_feedback_route

        _add_classify_route(app, state, guarded, errors)
        add_feedback_route(app, state, guarded, errors)
    else:
        _add_generate_route(app, state, guarded, errors)
    return app


def _add_classify_route(app: FastAPI, state: ServeState, guarded: list, errors: dict) -> None:
    settings, metrics = state.settings, state.metrics
    ClassifyRequest = classify_request_model(settings)

    @app.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        dependencies=guarded,
        responses=errors,
        summary="label each text",
    )
    async def classify(body: ClassifyRequest, request: Request):
        state.require_ready()
        texts = body.texts
        limit = settings.max_chars
        metrics.observe_inputs(texts)
        cut = [len(t) > limit for t in texts]
        if any(cut):
            if settings.on_long_text == "reject":
                i = cut.index(True)
                raise HTTPException(
                    413, f"texts.{i} has {len(texts[i]):,} characters; the limit is {limit:,}"
                )
            texts = [t[:limit] if c else t for t, c in zip(texts, cut, strict=True)]
        try:
            pairs = await asyncio.wait_for(state.batcher.submit(texts), settings.request_timeout_s)
        except TimeoutError:
            raise HTTPException(
                504, f"not answered within {settings.request_timeout_s:g} s"
            ) from None
        except BatcherClosed as exc:
            raise HTTPException(503, str(exc)) from None
        model = pairs[0][0]  # one model call answered the whole request: one version
        answers = [answer for _, answer in pairs]
        for answer, was_cut in zip(answers, cut, strict=True):
            answer.truncated = answer.truncated or was_cut
        metrics.observe_predictions([a.label for a in answers], sum(a.truncated for a in answers))
        state.input_drift.observe(texts, [a.score for a in answers])
        if state.shadow is not None:  # a put_nowait: the candidate scores after the answer
            state.shadow.submit(texts, [a.label for a in answers])
        if state.prediction_log is not None:
            state.prediction_log.add(
                PredictionLog.rows(
                    request.state.request_id, model.name, model.version, body.texts, answers
                )
            )
        payload = {"model": model.name, "version": model.version}
        payload["results"] = [a.to_dict() for a in answers]
        # Built here to the ClassifyResponse schema (it stays the documented response_model) and
        # written with orjson, instead of FastAPI validating and serializing it again: that round
        # trip was ~9 % of the request path's profile samples in benchmarks/serve_bench.py.
        return Response(orjson.dumps(payload), media_type="application/json")


def _sse(data: dict, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _add_generate_route(app: FastAPI, state: ServeState, guarded: list, errors: dict) -> None:
    settings, metrics = state.settings, state.metrics
    GenerateRequest = generate_request_model(settings)

    @app.post(
        "/v1/generate",
        response_model=GenerateResponse,
        dependencies=guarded,
        responses=errors | {200: {"content": {"text/event-stream": {}}}},
        summary="continue a prompt; server-sent events with stream=true",
    )
    async def generate(body: GenerateRequest):
        state.require_ready()
        lm: CausalLM = state.model
        sampling = body.model_dump(exclude={"prompt", "max_new_tokens", "stream"})
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        def produce() -> None:
            def put(item) -> None:
                try:
                    loop.call_soon_threadsafe(pieces.put_nowait, item)
                except RuntimeError:  # the loop closed: nobody listens any more
                    stop.set()

            try:
                for piece in lm.stream(body.prompt, body.max_new_tokens, stop=stop, **sampling):
                    put(("piece", piece))
                put(("done", None))
            except Exception as exc:
                put(("error", f"{type(exc).__name__}: {exc}"))

        async def run():
            """Yield (kind, value) while one generation at a time runs in a thread."""
            async with state.generate_lock:
                task = loop.run_in_executor(None, produce)
                try:
                    while True:
                        kind, value = await pieces.get()
                        yield kind, value
                        if kind != "piece":
                            break
                finally:
                    stop.set()
                    await asyncio.shield(task)

        if body.stream:

            async def events():
                async for kind, value in run():
                    if kind == "piece":
                        metrics.generated_tokens.inc()
                        yield _sse({"text": value})
                    elif kind == "done":
                        yield _sse({"model": lm.name, "version": lm.version}, event="done")
                    else:
                        yield _sse({"detail": value}, event="error")

            return StreamingResponse(
                events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )

        async def collect() -> str:
            out = []
            async for kind, value in run():
                if kind == "error":
                    raise RuntimeError(value)
                if kind == "piece":
                    metrics.generated_tokens.inc()
                    out.append(value)
            return "".join(out)

        try:
            text = await asyncio.wait_for(collect(), settings.request_timeout_s)
        except TimeoutError:
            raise HTTPException(
                504, f"not answered within {settings.request_timeout_s:g} s"
            ) from None
        return {"model": lm.name, "version": lm.version, "text": text}


def app_from_env() -> FastAPI:
    """The uvicorn factory ``lmforge serve`` runs in each worker (folder + settings from env)."""
    from lmforge.serve.lifeline import PARENT_ENV, die_with_parent

    parent = int(os.environ.get(PARENT_ENV) or 0)
    if parent and parent != os.getpid():  # a worker of `lmforge serve --workers N`
        die_with_parent(parent)
    settings = ServeSettings.model_validate_json(os.environ.get(SETTINGS_ENV) or "{}")
    return create_app(os.environ[MODEL_ENV], settings)
