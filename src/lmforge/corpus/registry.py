"""Every corpus step type by name: ``type`` in a recipe → (config model, step class).

Each step module exports ``STEPS = {"name": (ConfigModel, StepClass)}``; this module
collects them in pipeline-documentation order and builds the pydantic union that a
recipe's ``steps:`` list is validated against.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Annotated, Union

from pydantic import BaseModel, Field, TypeAdapter

from lmforge.corpus.step import GlobalStep, Step

STEP_MODULES = [
    "lmforge.corpus.normalize",
    "lmforge.corpus.filters",
    "lmforge.corpus.pii",
    "lmforge.corpus.decontam",
    "lmforge.corpus.dedup",
]


_EXTRA: dict[str, tuple[type[BaseModel], type[Step] | type[GlobalStep]]] = {}


def register_step(config: type[BaseModel], cls: type[Step] | type[GlobalStep]) -> None:
    """Add a user-defined step type (its config needs a ``type: Literal[...]`` field)."""
    name = config.model_fields["type"].default
    _EXTRA[name] = (config, cls)
    step_types.cache_clear()
    step_list_adapter.cache_clear()


@cache
def step_types() -> dict[str, tuple[type[BaseModel], type[Step] | type[GlobalStep]]]:
    """All registered step types, in module order, then user-registered ones."""
    found: dict[str, tuple[type[BaseModel], type[Step] | type[GlobalStep]]] = {}
    for module_name in STEP_MODULES:
        module = importlib.import_module(module_name)
        found.update(module.STEPS)
    found.update(_EXTRA)
    return found


@cache
def step_list_adapter() -> TypeAdapter:
    """Validates a recipe's ``steps:`` list against the union of every step config."""
    configs = tuple(config for config, _ in step_types().values())
    union = Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter(list[union])


def build_step(config: BaseModel) -> Step | GlobalStep:
    """Instantiate the step a validated config describes."""
    _, cls = step_types()[config.type]
    return cls(config)
