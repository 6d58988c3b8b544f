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


@dataclass
class BadRecord:
    """An input record that could not be read as a document (skipped and counted, never fatal).

    ``id`` names where it was (``file:line`` or ``file``), ``reason`` is a short
    machine-readable tag (``invalid_utf8``, ``malformed_json``, ``truncated_gzip``,
    ``binary_file``, ``empty_file``, ``line_too_long``, ...), ``detail`` a one-line message.
    """

    id: str
    reason: str
    detail: str = ""
