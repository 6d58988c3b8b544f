"""The leakage guard: test texts that also occur in the training split or in a pre-training
corpus folder (``CORPUS_DIR/data/*.parquet``, ``text`` column) are found, reported and refused
unless the user allows leakage.

Two keys: :func:`~lmforge.classify.data.dedup_key` (the text, stripped: the split's exact dedup)
for test against train/val, and the looser :func:`leakage_key` (NFKC, whitespace collapsed)
against a corpus whose normalizer may have rewritten the text, and to *report* near-copies
between test and train. Augmented training copies made from a validation or test text leak too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.classify.data import ClassificationData, dedup_key
from lmforge.errors import LmforgeError


def leakage_key(text: str) -> str:
    """Looser key (NFKC, whitespace collapsed, stripped) for near-copies.

    Used against the pre-training corpus (whose normalizer may have rewritten full-width
    characters or whitespace), and to *report* -- not refuse -- near-copies between test and train.
    """
    return " ".join(unicodedata.normalize("NFKC", text).split())


@dataclass
class LeakageReport:
    """Test texts also seen in training data or in the pre-training corpus."""

    n_test: int
    in_train: list[str] = field(default_factory=list)
    in_corpus: list[str] = field(default_factory=list)
    near_in_train: list[str] = field(default_factory=list)
    # augmented training copies made from a validation or test text
    augmented_from_eval: list[str] = field(default_factory=list)
    corpus_dir: str | None = None
    corpus_docs: int = 0

    @property
    def leaked(self) -> bool:
        return bool(self.in_train or self.in_corpus or self.augmented_from_eval)

    def summary(self) -> str:
        parts = [f"{len(self.in_train)} of {self.n_test} test texts also occur in train/val"]
        if self.augmented_from_eval:
            parts.append(
                f"{len(self.augmented_from_eval)} augmented training texts were made from "
                "validation or test texts"
            )
        if self.near_in_train:
            parts.append(
                f"{len(self.near_in_train)} more after NFKC/whitespace normalization (not refused)"
            )
        if self.corpus_dir is not None:
            parts.append(
                f"{len(self.in_corpus)} occur in the pre-training corpus {self.corpus_dir} "
                f"({self.corpus_docs} documents)"
            )
        return "; ".join(parts)

    def to_dict(self, examples: int = 5) -> dict:
        return {
            "n_test": self.n_test,
            "in_train": len(self.in_train),
            "in_corpus": len(self.in_corpus),
            "near_in_train": len(self.near_in_train),
            "augmented_from_eval": len(self.augmented_from_eval),
            "corpus_dir": self.corpus_dir,
            "corpus_docs": self.corpus_docs,
            "examples_in_train": self.in_train[:examples],
            "examples_in_corpus": self.in_corpus[:examples],
            "examples_near_in_train": self.near_in_train[:examples],
        }


def corpus_texts(corpus_dir: str | Path):
    """Yield the ``text`` column of ``CORPUS_DIR/data/*.parquet`` (batches, not the whole file)."""
    import pyarrow.parquet as pq

    root = Path(corpus_dir).expanduser()
    files = sorted((root / "data").glob("*.parquet"))
    if not files:
        raise LmforgeError(f"no corpus shards at {root / 'data'}/*.parquet")
    for path in files:
        try:
            pf = pq.ParquetFile(path)
            if "text" not in pf.schema_arrow.names:
                raise LmforgeError(f"{path}: corpus shard has no 'text' column")
            for batch in pf.iter_batches(columns=["text"], batch_size=65536):
                yield from batch.column(0).to_pylist()
        except LmforgeError:
            raise
        except Exception as exc:
            raise LmforgeError(f"{path}: cannot read corpus shard: {exc}") from exc


def find_leakage(data: ClassificationData, corpus_dir: str | Path | None = None) -> LeakageReport:
    """Test texts that also occur in train/val (:func:`dedup_key`) or in a corpus folder
    (:func:`leakage_key`); near-copies in train/val (same :func:`leakage_key`) are listed apart."""
    seen_exact = {dedup_key(t) for t in data.train_texts + data.val_texts}
    seen_near = {leakage_key(t) for t in data.train_texts + data.val_texts}
    report = LeakageReport(n_test=len(data.test_texts))
    report.in_train = [t for t in data.test_texts if dedup_key(t) in seen_exact]
    report.near_in_train = [
        t for t in data.test_texts if dedup_key(t) not in seen_exact and leakage_key(t) in seen_near
    ]
    eval_keys = {dedup_key(t) for t in data.val_texts + data.test_texts}
    report.augmented_from_eval = [
        copy for copy, origin in data.augmented_origins.items() if dedup_key(origin) in eval_keys
    ]
    test_keys = {leakage_key(t): t for t in data.test_texts}
    if corpus_dir is not None:
        report.corpus_dir = str(corpus_dir)
        hit: set[str] = set()
        for doc in corpus_texts(corpus_dir):
            report.corpus_docs += 1
            if doc is not None:
                key = leakage_key(doc)
                if key in test_keys:
                    hit.add(key)
        report.in_corpus = [test_keys[k] for k in test_keys if k in hit]
    return report


def check_leakage(
    data: ClassificationData, corpus_dir: str | Path | None = None, allow_leakage: bool = False
) -> LeakageReport:
    """:func:`find_leakage`, raising :class:`LmforgeError` on any leak unless ``allow_leakage``."""
    report = find_leakage(data, corpus_dir)
    if report.leaked and not allow_leakage:
        example = (report.in_train or report.in_corpus or report.augmented_from_eval)[0]
        raise LmforgeError(
            f"test leakage: {report.summary()} (e.g. {example[:40]!r}); "
            "pass --allow-leakage to go on anyway"
        )
    return report
