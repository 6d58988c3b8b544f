"""The two kinds of corpus step and the log a step reports into.

A *document step* (:class:`Step`) sees one batch of documents at a time and can
change their text, annotate their metadata, or remove them with a reason. It
runs independently on every rank (slice of the input), so it must not keep state
across batches that changes its output.

A *global step* (:class:`GlobalStep`, deduplication) needs to see the whole
corpus before it can decide. It runs in three phases over files:

1. ``signature(docs)`` on every rank, in parallel: a small Arrow table per batch
   (e.g. one hash or one MinHash signature per document);
2. ``resolve(signature_files, workdir, log)`` once, after all ranks finished:
   reads the signatures of every rank, decides which documents go, and returns
   them as a table with columns ``rank`` (int32), ``row`` (int64, position of
   the document within its rank's stream), ``reason`` (str) and ``dup_of``
   (str, id of the document that was kept, or "");
3. the pipeline drops those rows on every rank while the next pipeline phase reads its input.

Steps never know which executor runs them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from lmforge.corpus.document import Document


@dataclass
class StepLog:
    """What one step did to the documents it saw: removals with reasons, and named counters.

    ``removed`` holds (document, reason) pairs; the pipeline turns them into the
    removed-documents log. ``counters`` holds anything else worth reporting
    (e.g. ``pii:email`` → number of e-mails masked, ``changed`` → documents whose
    text was modified).
    """

    removed: list[tuple[Document, str]] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)

    def remove(self, doc: Document, reason: str) -> None:
        self.removed.append((doc, reason))

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] += n


class Step:
    """A per-document step. Subclasses set ``name`` and implement :meth:`process`."""

    name: ClassVar[str] = "step"

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        """Return the documents that stay (possibly modified); report removals to ``log``."""
        raise NotImplementedError


class TextStep(Step):
    """A step that rewrites each document's text (normalization, masking) and removes nothing.

    Subclasses implement :meth:`transform`; ``counts`` collects named counters
    (e.g. ``pii:email``) that end up in the step's stats next to ``changed``.
    """

    def transform(self, text: str, counts: dict[str, int] | None = None) -> str:
        raise NotImplementedError

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        counts: dict[str, int] = {}
        changed = 0
        for doc in docs:
            new = self.transform(doc.text, counts)
            if new != doc.text:
                doc.text = new
                changed += 1
        log.count("changed", changed)
        for key, n in counts.items():
            log.count(key, n)
        return docs


class GlobalStep:
    """A step that must see the whole corpus (deduplication). See the module docstring."""

    name: ClassVar[str] = "global"

    def signature(self, docs: list[Document]) -> pa.Table:
        """One row per document, in order. Must not include a ``row`` column: the pipeline adds it."""
        raise NotImplementedError

    def resolve(self, signature_files: list[Path], workdir: Path, log: StepLog) -> pa.Table:
        """Decide which documents to remove, given one signature Parquet file per rank.

        Each file holds the rank's signature rows plus an int64 ``row`` column.
        ``signature_files[i]`` belongs to rank ``i``; earlier ranks and rows come first
        in corpus order, and the first document of a duplicate group is the one kept.
        ``workdir`` is a private scratch folder (for spilling to disk).
        Returns a table with columns rank, row, reason, dup_of (see module docstring).
        ``log.counters`` may receive summary numbers; ``report_extra()`` may return
        more (e.g. largest clusters) for the report.
        """
        raise NotImplementedError

    def report_extra(self) -> dict[str, Any]:
        """Optional JSON-able details for the report (set during :meth:`resolve`)."""
        return {}


REMOVED_SCHEMA = pa.schema(
    [
        ("rank", pa.int32()),
        ("row", pa.int64()),
        ("reason", pa.string()),
        ("dup_of", pa.string()),
    ]
)
