"""Serve a model folder over HTTP: ``lmforge serve MODEL_DIR``.

- :mod:`~lmforge.serve.app`: the FastAPI app (:func:`create_app`), its routes, limits and auth;
- :mod:`~lmforge.serve.batcher`: the asyncio micro-batcher in front of the :class:`Predictor`;
- :mod:`~lmforge.serve.metrics`: Prometheus metrics on a per-app registry, label drift;
- :mod:`~lmforge.serve.store`: the optional prediction log (SQLAlchemy, off the request path);
- :mod:`~lmforge.serve.generation`: streamed generation when a causal LM folder is served;
- ``static/index.html``: the web page at ``GET /``.
"""

from lmforge.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from lmforge.serve.app import create_app

        return create_app
    raise AttributeError(name)
