"""Executors run one function over many tasks: a local process pool, or Ray tasks on a cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lmforge.corpus.config import CorpusConfig
    from lmforge.corpus.executors.base import Executor


def make_executor(config: CorpusConfig) -> Executor:
    """The executor the config's ``executor`` section names (Ray is imported only when chosen)."""
    if config.executor.type == "ray":
        from lmforge.corpus.executors.ray import RayExecutor

        return RayExecutor(config.executor, config.workers)
    from lmforge.corpus.executors.local import LocalExecutor

    return LocalExecutor(config.workers)
