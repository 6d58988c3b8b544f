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
    machine-readable tag (``invalid_encoding``, ``malformed_json``, ``truncated_file``,
    ``binary_file``, ``empty_file``, ``too_long``, ...; the full list is
    ``lmforge.corpus.readers.BAD_RECORD_REASONS``), ``detail`` a one-line message.
    """

    id: str
    reason: str
    detail: str = ""
