"""The unit every corpus step sees: a document with an id, its text and free-form metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """One document. ``id`` is stable across runs (derived from source and position)."""

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
