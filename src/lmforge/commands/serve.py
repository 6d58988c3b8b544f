"""``lmforge serve MODEL_DIR``: the model behind an HTTP API (FastAPI + uvicorn).

The work is in :func:`serve`; the Typer command only parses. ``--workers N`` starts N uvicorn
worker processes, each loading its own copy of the model (N x the memory; each exposes its own
``/metrics``); the port is shared by the OS.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from lmforge.commands import trust_model_code_option
from lmforge.errors import LmforgeError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise LmforgeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def parse_options(pairs: list[str] | None) -> dict:
    """``["threads=1", "x=true"]`` -> ``{"threads": 1, "x": True}``."""
    out: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LmforgeError(f"--backend-option {pair!r}: expected KEY=VALUE")
        low = value.strip().lower()
        if low in ("true", "false"):
            out[key.strip()] = low == "true"
            continue
        for cast in (int, float):
            try:
                out[key.strip()] = cast(value)
                break
            except ValueError:
                pass
        else:
            out[key.strip()] = value.strip()
    return out


def build_settings(**values):
    from lmforge.serve.settings import ServeSettings

    try:
        return ServeSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise LmforgeError(f"--{field.replace('_', '-')}: {first['msg']}") from exc


def preload(model_dir: Path, kind: str, settings):
    """Load the model before the server starts, so a folder that cannot load is a one-line
    error and a non-zero exit, not a server whose /healthz says ok while it serves nothing."""
    from lmforge.serve.state import load_served_model

    try:
        return load_served_model(model_dir, kind, settings)
    except LmforgeError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise LmforgeError(f"cannot load {model_dir}: {type(exc).__name__}: {reason}") from exc


def preload_shadow(model_dir: Path, kind: str, settings, console: Console):
    """The ``--shadow`` candidate, loaded (tagged with its registry version): a name that is
    neither a version nor a folder, or a folder that cannot load, stops the start in one line."""
    from lmforge.serve.generation import CLASSIFIER
    from lmforge.serve.registry import Registry, is_registry
    from lmforge.serve.shadow import resolve_shadow
    from lmforge.serve.state import ServeState

    if kind != CLASSIFIER:
        raise LmforgeError("--shadow needs a classifier (the served model is a causal LM)")
    registry = Registry(model_dir) if is_registry(model_dir) else None
    folder, version = resolve_shadow(settings.shadow, registry)
    with console.status(f"loading the shadow {folder}"):
        shadow = preload(folder, CLASSIFIER, settings)
    ServeState._tag(shadow, version)
    return shadow


def serve(
    model_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    settings=None,
    log_level: str = "info",
    console: Console | None = None,
) -> None:
    """Check the folder and the port, then run uvicorn until interrupted (graceful shutdown)."""
    import uvicorn

    from lmforge.predictor import resolve_model_dir
    from lmforge.serve.app import MODEL_ENV, SETTINGS_ENV
    from lmforge.serve.generation import folder_kind
    from lmforge.serve.registry import Registry, is_registry
    from lmforge.serve.settings import ServeSettings

    console = console or Console(stderr=True)
    settings = settings or ServeSettings()
    model_dir = resolve_model_dir(model_dir)  # a run folder serves the model it chose
    folder = model_dir  # a registry serves its current version
    if is_registry(model_dir):
        folder = Registry(model_dir).path(Registry(model_dir).current)
    kind = folder_kind(folder)
    if workers < 1:
        raise LmforgeError(f"--workers must be ≥ 1, got {workers}")
    _check_port(host, port)
    if not _is_loopback(host) and not settings.api_keys:
        console.print(
            f"[bold yellow]warning:[/] listening on {host} without an API key: anyone who can "
            "reach this machine can use the model (--api-key or $LMFORGE_API_KEYS)"
        )
    with console.status(f"loading {folder}"):
        model = preload(folder, kind, settings)
    shadow = preload_shadow(model_dir, kind, settings, console) if settings.shadow else None
    if workers == 1:  # this process serves: keep the model it has just loaded
        from lmforge.serve.app import create_app

        target, factory = create_app(model, settings, source=model_dir, shadow=shadow), False
    else:  # each worker process loads its own copy; this one only checked that it loads
        from lmforge.serve.lifeline import PARENT_ENV

        target, factory = "lmforge.serve.app:app_from_env", True
        os.environ[PARENT_ENV] = str(os.getpid())  # the workers die with this process
    del model, shadow
    os.environ[MODEL_ENV] = str(model_dir.resolve())
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"serving [bold]{model_dir}[/] ({kind}) at http://{shown}:{port}/ · {workers} worker(s) · "
        f"batches ≤ {settings.max_batch} texts / {settings.max_wait_ms:g} ms · "
        f"auth {'on' if settings.api_keys else 'off'} · "
        f"prediction log {settings.prediction_log or 'off'}"
        + (f" · shadow {settings.shadow}" if settings.shadow else ""),
        highlight=False,
    )
    uvicorn.run(
        target,
        factory=factory,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
        # a worker's warm-up holds the GIL for seconds on a busy machine; uvicorn's default (5 s
        # for the supervisor's ping) killed both workers of --workers 2 mid-warm-up, over and
        # over, at a load average of 14 on 2 cores
        timeout_worker_healthcheck=30,
    )


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        model_dir: Path = typer.Argument(
            ..., help="a classifier folder, a registry folder (lmforge registry) or a causal LM"
        ),
        host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
        port: int = typer.Option(8000, "--port"),
        workers: int = typer.Option(1, "--workers", help="processes, each with its own model"),
        max_batch: int = typer.Option(64, "--max-batch", help="texts per model call"),
        max_wait_ms: float = typer.Option(
            0.0,
            "--max-wait-ms",
            help="wait for a batch to fill (0: run once the model is free; busy-time arrivals batch)",
        ),
        model_batch: int = typer.Option(
            None, "--model-batch", help="texts per backend call within a batch (default: max-batch)"
        ),
        max_texts: int = typer.Option(64, "--max-texts", help="texts per request"),
        max_chars: int = typer.Option(2000, "--max-chars", help="characters per text"),
        on_long_text: str = typer.Option(
            "truncate", "--on-long-text", help="truncate (flagged) or reject (413)"
        ),
        max_body_bytes: int = typer.Option(1_000_000, "--max-body-bytes"),
        timeout: float = typer.Option(30.0, "--timeout", help="seconds per request"),
        api_key: list[str] = typer.Option(
            None, "--api-key", help="accepted API key (repeatable; or $LMFORGE_API_KEYS)"
        ),
        admin_key: list[str] = typer.Option(
            None,
            "--admin-key",
            help="key for POST /admin/reload (X-Admin-Key; repeatable; or $LMFORGE_ADMIN_KEYS)",
        ),
        prediction_log: str = typer.Option(
            None, "--prediction-log", help="SQLite file or SQLAlchemy URL to log predictions to"
        ),
        backend: str = typer.Option(
            None, "--backend", help="Predictor backend (default: the folder's)"
        ),
        backend_option: list[str] = typer.Option(
            None, "--backend-option", help="KEY=VALUE for the backend, e.g. threads=1 (repeatable)"
        ),
        log_mask_pii: bool = typer.Option(
            True, "--log-mask-pii/--log-raw-text", help="mask PII in the prediction log's texts"
        ),
        log_retention_days: float = typer.Option(
            None, "--log-retention-days", help="delete logged rows older than this"
        ),
        log_retention_rows: int = typer.Option(
            None, "--log-retention-rows", help="keep only the newest N logged rows"
        ),
        shadow: str = typer.Option(
            None,
            "--shadow",
            help="a candidate (registry version or classifier folder) scoring the same texts "
            "off the response path; /metrics: lmforge_shadow_agreement",
        ),
        shadow_sample: float = typer.Option(
            1.0, "--shadow-sample", help="share of requests the shadow scores (0-1]"
        ),
        log_level: str = typer.Option("info", "--log-level"),
        trust_model_code: bool = trust_model_code_option(),
    ) -> None:
        """Serve a model: POST /v1/classify (or /v1/generate), /metrics, a web page at /."""
        from lmforge.serve.settings import ADMIN_KEYS_ENV, api_keys_from_env

        settings = build_settings(
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            model_batch=model_batch,
            max_texts=max_texts,
            max_chars=max_chars,
            on_long_text=on_long_text,
            max_body_bytes=max_body_bytes,
            request_timeout_s=timeout,
            api_keys=tuple(api_key or ()) or api_keys_from_env(),
            admin_keys=tuple(admin_key or ()) or api_keys_from_env(name=ADMIN_KEYS_ENV),
            prediction_log=prediction_log,
            backend=backend,
            backend_options=parse_options(backend_option),
            trust_model_code=trust_model_code,
            log_mask_pii=log_mask_pii,
            log_retention_days=log_retention_days,
            log_retention_rows=log_retention_rows,
            shadow=shadow,
            shadow_sample=shadow_sample,
        )
        serve(model_dir, host, port, workers, settings, log_level)
