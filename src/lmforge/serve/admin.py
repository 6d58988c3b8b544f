"""The admin side of a server: ``POST /admin/reload`` (separate admin keys) and SIGHUP, both
switching to another model version through :meth:`lmforge.serve.state.ServeState.reload`."""

import asyncio
import logging
import signal

from fastapi import Depends, FastAPI, HTTPException

from lmforge.errors import LmforgeError
from lmforge.serve.schemas import ErrorResponse, ModelsResponse, ReloadRequest

log = logging.getLogger("lmforge.serve")


def reload_on_sighup(state):
    """SIGHUP reloads (one-process server in the main thread); returns the undo."""

    async def reload() -> None:
        try:
            await state.reload()
        except Exception:
            log.exception("reload on SIGHUP failed; still serving the previous version")

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
    except (AttributeError, NotImplementedError, RuntimeError, ValueError):
        return lambda: None  # not the main thread (tests, --workers: uvicorn restarts them)
    return lambda: loop.remove_signal_handler(signal.SIGHUP)


def add_admin_routes(app: FastAPI, state, errors: dict, require_admin_key) -> None:
    """``POST /admin/reload`` behind ``require_admin_key`` (X-Admin-Key)."""
    admin = [Depends(require_admin_key)]

    @app.post(
        "/admin/reload",
        response_model=ModelsResponse,
        dependencies=admin,
        responses={401: errors[401], 404: {"model": ErrorResponse}, 500: {"model": ErrorResponse}},
        summary="switch to a registry version (default: its current) or reload the folder",
    )
    async def reload(body: ReloadRequest | None = None):
        try:
            info = await state.reload(body.version if body else None)
        except LmforgeError as exc:
            log.warning("reload refused: %s", exc)
            raise HTTPException(404, "no such version, or nothing to reload") from None
        except Exception:
            log.exception("reload failed; still serving the previous version")
            raise HTTPException(500, "reload failed (the server log says why)") from None
        return {
            "models": [info | {"kind": state.kind, "ready": True}],
            "versions": state.versions(),
        }
