"""Decontamination: drop training documents that share a long n-gram with an evaluation set.

The published recipes match long word n-grams: GPT-3 removed training documents
sharing a 13-gram with a benchmark (shorter for very short eval items), and the
same 13-gram rule is what FineWeb and most open pipelines reuse. Chinese has no
spaces, so we match *character* n-grams instead: with an average of about 1.5
characters per Chinese word (jieba segmentation of news and reviews), 13 words
are ~20 characters, the default ``ngram``. Both sides are normalised first
(lowercased, whitespace, punctuation and symbols removed, as in exact dedup) so
that spacing or a changed comma does not hide a copy. For English-only corpora
raise ``ngram`` to ~50 (13 words of ~4 letters, spaces removed).

An eval text shorter than ``ngram`` (after normalisation) but at least
``min_eval_chars`` long is matched as a whole (the training document must
contain all of it); shorter ones are too generic to be evidence of containment.

``exact`` (on by default) adds the other half: a document *equal* to an eval
text after normalisation is removed whatever its length. Eval sets of short
texts (reviews, questions) need it: "很好" in a test split is not evidence that a
long document copied it, but a corpus document that *is* "很好" is that test item.

Matching is exact on 64-bit polynomial hashes of the windows, computed for every
window length at once from prefix sums (mod 2⁶⁴), so a batch of documents is
checked with a few numpy passes per distinct eval length.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import xxhash
from pydantic import BaseModel, Field

from lmforge.corpus.dedup import normalize_for_exact
from lmforge.corpus.document import Document
from lmforge.corpus.step import Step, StepLog
from lmforge.errors import LmforgeError

_BASE = 0x100000001B3  # odd, hence invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 2**64)


class DecontaminateConfig(BaseModel, extra="forbid"):
    """Remove documents sharing a long character n-gram with any eval file (reason ``contaminated``)."""

    type: Literal["decontaminate"] = "decontaminate"
    enabled: bool = True
    eval_files: list[str] = Field(
        default_factory=list, description="txt (one text per line) or jsonl files of eval texts"
    )
    text_field: str = Field("text", description="field holding the text in jsonl eval files")
    ngram: int = Field(20, ge=2, description="characters per n-gram, after normalisation")
    min_eval_chars: int = Field(
        10, ge=1, description="shorter eval texts are not matched inside longer documents"
    )
    exact: bool = Field(
        True, description="also remove documents equal to an eval text (any length)"
    )


def read_eval_texts(path: str | Path, text_field: str = "text") -> list[str]:
    """Texts of an eval file: ``.jsonl`` (``text_field`` of every line) or text (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"decontaminate: eval file not found: {path}")
    texts = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if path.suffix.lower() == ".jsonl":
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LmforgeError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                    raise LmforgeError(f"{path}:{lineno}: no string field {text_field!r}")
                texts.append(record[text_field])
            else:
                texts.append(line)
    return texts


class _WindowHasher:
    """Polynomial hashes of arbitrary windows of a batch of concatenated code points."""

    def __init__(self, texts: list[str]):
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        self.offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
        n = len(codes)
        self.doc = np.repeat(np.arange(len(texts)), lengths)
        powers = np.full(n + 1, _BASE, dtype=np.uint64)
        powers[0] = 1
        self.pow = np.cumprod(powers)  # B^t (wraps modulo 2**64)
        inv = np.full(n, _BASE_INV, dtype=np.uint64)
        inv[0] = 1
        self.prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * np.cumprod(inv), out=self.prefix[1:])

    def all_windows(self, m: int) -> np.ndarray:
        """Hashes of every window of ``m`` code points starting at 0, 1, ... (documents ignored)."""
        if len(self.doc) < m:
            return np.zeros(0, np.uint64)
        return (self.prefix[m:] - self.prefix[:-m]) * self.pow[m - 1 : -1]

    def windows(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, document index) of every window of ``m`` characters inside one document."""
        h = self.all_windows(m)
        start = np.arange(len(h))
        ok = start + m <= self.offsets[1:][self.doc[: len(h)]]
        return h[ok], self.doc[: len(h)][ok]


def _bucket(h: np.ndarray, bits: int) -> np.ndarray:
    """Fibonacci hashing of the window hashes into ``2**bits`` buckets (the pre-filter)."""
    return (h * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)


class Decontaminator(Step):
    """Removes documents that contain a long passage of an eval file (see the module docstring)."""

    name = "decontaminate"
    reason = "contaminated"

    def __init__(self, config: DecontaminateConfig | None = None):
        self.config = config or DecontaminateConfig()
        self._index: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self._exact: dict[int, int] = {}  # hash of a normalised eval text -> first file index
        self.skipped_eval_texts: Counter = Counter()

    def _normalize(self, text: str) -> str:
        # NFKC first: eval files are raw, corpus documents went through `normalize`
        return normalize_for_exact(unicodedata.normalize("NFKC", text), "lower_no_punct")

    @staticmethod
    def _exact_key(normalized: str) -> int:
        return xxhash.xxh3_64_intdigest(normalized.encode("utf-8", "surrogatepass"))

    def build_index(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """window length → (sorted eval hashes, eval file index of each)."""
        cfg = self.config
        by_length: dict[int, list[tuple[np.ndarray, int]]] = {}
        for file_index, path in enumerate(cfg.eval_files):
            texts = [self._normalize(t) for t in read_eval_texts(path, cfg.text_field)]
            if cfg.exact:
                for t in texts:
                    if t:
                        self._exact.setdefault(self._exact_key(t), file_index)
            long_texts = [t for t in texts if len(t) >= cfg.ngram]
            short = [t for t in texts if cfg.min_eval_chars <= len(t) < cfg.ngram]
            self.skipped_eval_texts[path] += len(texts) - len(long_texts) - len(short)
            if long_texts:
                h, _ = _WindowHasher(long_texts).windows(cfg.ngram)
                by_length.setdefault(cfg.ngram, []).append((h, file_index))
            for t in short:
                h, _ = _WindowHasher([t]).windows(len(t))
                by_length.setdefault(len(t), []).append((h, file_index))
        index = {}
        total = sum(len(h) for parts in by_length.values() for h, _ in parts)
        self._bits = max(20, int(np.ceil(np.log2(max(total, 1) * 16))))
        self._filter = np.zeros(2**self._bits, dtype=bool)
        for m, parts in sorted(by_length.items()):
            hashes = np.concatenate([h for h, _ in parts])
            files = np.concatenate([np.full(len(h), f, np.int32) for h, f in parts])
            order = np.lexsort((files, hashes))
            index[m] = (hashes[order], files[order])
            self._filter[_bucket(hashes, self._bits)] = True
        return index

    def matches(self, texts: list[str]) -> np.ndarray:
        """For each text, the index of the first eval file it shares an n-gram with, or -1."""
        if self._index is None:
            self._index = self.build_index()
        found = np.full(len(texts), np.iinfo(np.int32).max, dtype=np.int64)
        normalized = [self._normalize(t) for t in texts]
        if self._exact:
            for i, t in enumerate(normalized):
                found[i] = self._exact.get(self._exact_key(t), found[i])
        if not self._index or not texts:
            return np.where(found == np.iinfo(np.int32).max, -1, found)
        hasher = _WindowHasher(normalized)
        for m, (eval_hashes, eval_files) in self._index.items():
            h = hasher.all_windows(m)
            start = np.flatnonzero(self._filter[_bucket(h, self._bits)])
            doc = hasher.doc[start]
            start = start[start + m <= hasher.offsets[doc + 1]]  # inside one document
            h, doc = h[start], hasher.doc[start]
            pos = np.minimum(np.searchsorted(eval_hashes, h), len(eval_hashes) - 1)
            hit = eval_hashes[pos] == h
            np.minimum.at(found, doc[hit], eval_files[pos[hit]])
        return np.where(found == np.iinfo(np.int32).max, -1, found)

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        if not self.config.eval_files:
            return docs
        which = self.matches([d.text for d in docs])
        kept = []
        for doc, file_index in zip(docs, which.tolist(), strict=True):
            if file_index < 0:
                kept.append(doc)
            else:
                log.remove(doc, self.reason)
                log.count(f"contaminated:{Path(self.config.eval_files[file_index]).name}")
        return kept


STEPS = {"decontaminate": (DecontaminateConfig, Decontaminator)}
