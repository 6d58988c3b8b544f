"""Gopher-style repetition rules, made CJK-aware and computed for a whole batch with numpy.

Units. Gopher counts n-grams of whitespace-separated words. Chinese has no spaces, so
here a *unit* is one character for Han / kana / Hangul / punctuation / symbols, and
one word for runs of Latin (or other alphabetic) letters and digits; whitespace is
not a unit. "Characters" below are the non-space characters of the units.

Statistics per document (all stored in ``doc.meta["scores"]``):

- ``dup_line_frac`` / ``dup_line_char_frac``: lines that repeat an earlier line of the
  document, by count / by characters (same for paragraphs, split on blank lines);
- ``top_{n}gram``: characters covered by the most repeated unit n-gram × its count,
  over all characters (n = 2, 3, 4);
- ``dup_{n}gram``: characters covered by every repeated occurrence (all but the first)
  of any unit n-gram, over all characters (n = 5 … 10).

How it is fast: no per-document Python loop. For each n, the hash of every unit n-gram
of the batch (document id mixed in) is packed with its position into one uint64 and
sorted with ``np.sort``; equal n-grams become adjacent with their first occurrence
first, which gives group sizes (top n-gram), repeated occurrences (dup n-gram
coverage, from the few repeated positions re-sorted by position) and distinct units (n = 1). The
hash keeps 42 bits: a false match needs a collision inside one batch (~1e-3 per batch).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from lmforge.corpus.document import Document
from lmforge.corpus.filters import charclass as cc
from lmforge.corpus.step import Step, StepLog

MAX_N = 10
_WORD_CLASSES = (cc.LATIN, cc.OTHER_LETTER, cc.DIGIT)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_DOC_MIX = np.uint64(0xC2B2AE3D27D4EB4F)
_IDX_BITS = 22  # unit index packed under the hash: up to 4M units per sort


class RepetitionConfig(BaseModel, extra="forbid"):
    """Thresholds: a document whose statistic is above its limit is removed with that reason.

    n-gram rules only apply to documents with at least ``min_units_for_ngrams`` units
    (shorter texts cannot repeat an n-gram without it being a large fraction);
    ``min_unique_unit_ratio`` catches the short junk ("好好好好好好好好好好") instead.
    """

    type: Literal["repetition"] = "repetition"
    enabled: bool = True
    max_dup_line_frac: float = 0.3
    max_dup_line_char_frac: float = 0.2
    max_dup_para_frac: float = 0.3
    max_dup_para_char_frac: float = 0.2
    top_ngrams: dict[int, float] = Field(default_factory=lambda: {2: 0.30, 3: 0.30, 4: 0.30})
    dup_ngrams: dict[int, float] = Field(
        default_factory=lambda: {5: 0.35, 6: 0.33, 7: 0.31, 8: 0.29, 9: 0.27, 10: 0.25}
    )
    min_units_for_ngrams: int = Field(50, ge=1)
    min_unique_unit_ratio: float = Field(0.3, ge=0, le=1)
    min_units_for_unique_ratio: int = Field(8, ge=1)


def _powers(n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        p = np.full(max(n, 1), _MIX, dtype=np.uint64)
        p[0] = 1
        return np.cumprod(p, dtype=np.uint64)


def unit_stats(texts: list[str], top_ns, dup_ns) -> dict[str, np.ndarray]:
    """Per-document unit count, unique-unit ratio, ``n{n}`` = top/dup n-gram char fractions."""
    n_docs = len(texts)
    cps, starts = cc.codepoints(texts)
    classes = cc.class_table()[cps]
    doc_of_pos = np.repeat(np.arange(n_docs, dtype=np.int64), np.diff(starts))
    keep = classes != cc.SPACE
    is_word = np.isin(classes, _WORD_CLASSES)
    # a kept position starts a unit unless it continues a word run in the same document
    cont = np.zeros(len(cps), dtype=bool)
    cont[1:] = is_word[1:] & is_word[:-1]
    cont[starts[:-1][starts[:-1] < len(cps)]] = False
    unit_start = keep & ~cont
    start_pos = np.flatnonzero(unit_start)
    n_units = len(start_pos)
    if n_units >= 1 << _IDX_BITS:
        if n_docs == 1:  # one enormous document: its statistics from the first 2M characters
            return unit_stats([texts[0][: 1 << (_IDX_BITS - 1)]], top_ns, dup_ns)
        half = n_docs // 2
        a = unit_stats(texts[:half], top_ns, dup_ns)
        b = unit_stats(texts[half:], top_ns, dup_ns)
        return {k: np.concatenate([a[k], b[k]]) for k in a}
    udoc = doc_of_pos[start_pos]
    units_per_doc = np.bincount(udoc, minlength=n_docs)
    out: dict[str, np.ndarray] = {"units": units_per_doc}
    if n_units == 0:
        out["unique_ratio"] = np.ones(n_docs)
        for n in set(top_ns) | set(dup_ns):
            out[f"n{n}"] = np.zeros(n_docs)
        return out
    with np.errstate(over="ignore"):
        if n_units == int(keep.sum()):  # every unit is one character (no word runs)
            uhash = cps[start_pos].astype(np.uint64) * _MIX
            unit_len = np.ones(n_units, dtype=np.int64)
        else:  # hash of a unit: sum of code point x MIX^(offset+1) over its characters
            pos = np.flatnonzero(keep)
            unit_id = (np.cumsum(unit_start) - 1)[pos]
            offset = pos - start_pos[unit_id]
            vals = cps[pos].astype(np.uint64) * _powers(int(offset.max()) + 2)[offset + 1]
            uhash = np.add.reduceat(vals, np.flatnonzero(np.diff(unit_id, prepend=-1)))
            unit_len = np.bincount(unit_id, minlength=n_units).astype(np.int64)
        # the document id is part of every n-gram hash, so n-grams never match across documents
        h = uhash ^ (udoc.astype(np.uint64) * _DOC_MIX)
    doc_unit_end = np.cumsum(units_per_doc)
    rem = doc_unit_end[udoc] - np.arange(n_units, dtype=np.int64)  # units left in the doc
    cum_len = np.zeros(n_units + 1, dtype=np.int64)
    np.cumsum(unit_len, out=cum_len[1:])
    denom = np.maximum(np.bincount(udoc, weights=unit_len, minlength=n_docs), 1)
    shift = np.uint64(_IDX_BITS)
    idx_mask = np.uint64((1 << _IDX_BITS) - 1)
    needed = set(top_ns) | set(dup_ns)
    for n in range(1, max(needed, default=1) + 1):
        if n > 1:
            with np.errstate(over="ignore"):
                h = h[:-1] * _MIX + uhash[n - 1 :]
        if n != 1 and n not in needed:
            continue
        sel = np.flatnonzero(rem[: len(h)] >= n)
        # sort (hash | position) packed in one uint64: equal n-grams become adjacent, and
        # inside a run the first occurrence comes first
        ks = np.sort(((h[sel] >> shift) << shift) | sel.astype(np.uint64))
        hs = ks >> shift
        same = np.empty(len(ks), dtype=bool)
        same[:1] = False
        np.equal(hs[1:], hs[:-1], out=same[1:])
        if n == 1:
            distinct = np.bincount(udoc[(ks[~same] & idx_mask).astype(np.int64)], minlength=n_docs)
            out["unique_ratio"] = distinct / np.maximum(units_per_doc, 1)
            continue
        if n in top_ns:
            heads = np.flatnonzero(~same)
            size = np.diff(heads, append=len(ks))
            rep = size >= 2
            p = (ks[heads[rep]] & idx_mask).astype(np.int64)
            best = np.zeros(n_docs)
            np.maximum.at(best, udoc[p], size[rep] * (cum_len[p + n] - cum_len[p]))
            out[f"n{n}"] = best / denom
        if n in dup_ns:
            # repeated occurrences (all but the first), in text order; the characters they
            # cover = each one's span, cut where the next repeated occurrence starts
            p = np.sort((ks[same] & idx_mask).astype(np.int64))
            end = p + n
            if len(p) > 1:
                nxt = np.append(p[1:], n_units)
                end = np.where(
                    udoc[np.minimum(nxt, n_units - 1)] == udoc[p], np.minimum(end, nxt), end
                )
            covered = cum_len[end] - cum_len[p]
            out[f"n{n}"] = np.bincount(udoc[p], weights=covered, minlength=n_docs) / denom
    return out


def _dup_fracs(parts: list[str]) -> tuple[float, float]:
    """(duplicate fraction by count, by characters) of non-empty parts repeating earlier ones."""
    seen: set[str] = set()
    dup = dup_chars = total_chars = count = 0
    for part in parts:
        part = part.strip()
        if not part:
            continue
        count += 1
        total_chars += len(part)
        if part in seen:
            dup += 1
            dup_chars += len(part)
        else:
            seen.add(part)
    if count == 0:
        return 0.0, 0.0
    return dup / count, dup_chars / max(total_chars, 1)


class Repetition(Step):
    name = "repetition"

    def __init__(self, config: RepetitionConfig | None = None) -> None:
        self.config = config or RepetitionConfig()
        cfg = self.config
        bad = [n for n in list(cfg.top_ngrams) + list(cfg.dup_ngrams) if not 1 <= n <= MAX_N]
        if bad:
            raise ValueError(f"repetition: n-gram sizes must be 1..{MAX_N}, got {bad}")

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        if not docs:
            return docs
        cfg = self.config
        stats = unit_stats([d.text for d in docs], cfg.top_ngrams, cfg.dup_ngrams)
        units = stats["units"]
        names = ["units", "unique_unit_ratio"]
        columns = [units, stats["unique_ratio"].round(4)]
        # the first n-gram rule a document breaks, evaluated for the whole batch at once
        first_bad = np.full(len(docs), -1)
        rules = [(f"top_{n}gram", n, t) for n, t in sorted(cfg.top_ngrams.items())]
        rules += [(f"dup_{n}gram", n, t) for n, t in sorted(cfg.dup_ngrams.items())]
        long_enough = units >= cfg.min_units_for_ngrams
        for j, (_name, n, limit) in reversed(list(enumerate(rules))):
            first_bad[long_enough & (stats[f"n{n}"] > limit)] = j
        names += [name for name, _, _ in rules]
        columns += [stats[f"n{n}"].round(4) for _, n, _ in rules]
        low_unique = (units >= cfg.min_units_for_unique_ratio) & (
            stats["unique_ratio"] < cfg.min_unique_unit_ratio
        )
        rows = zip(*[c.tolist() for c in columns], strict=True)
        kept = []
        for doc, row, bad, low in zip(
            docs, rows, first_bad.tolist(), low_unique.tolist(), strict=True
        ):
            scores = cc.scores_of(doc.meta)
            scores.update(zip(names, row, strict=True))
            reason = self._line_rules(doc.text, scores) if "\n" in doc.text else None
            if reason is None and bad >= 0:
                reason = rules[bad][0]
            if reason is None and low:
                reason = "unique_unit_ratio"
            if reason:
                log.remove(doc, reason)
            else:
                kept.append(doc)
        return kept

    def _line_rules(self, text: str, scores: dict) -> str | None:
        cfg = self.config
        reason = None
        lf, lcf = _dup_fracs(text.split("\n"))
        scores["dup_line_frac"], scores["dup_line_char_frac"] = round(lf, 4), round(lcf, 4)
        if lf > cfg.max_dup_line_frac:
            reason = "dup_line_frac"
        elif lcf > cfg.max_dup_line_char_frac:
            reason = "dup_line_char_frac"
        if "\n\n" in text:
            pf, pcf = _dup_fracs(text.split("\n\n"))
            scores["dup_para_frac"], scores["dup_para_char_frac"] = round(pf, 4), round(pcf, 4)
            if reason is None and pf > cfg.max_dup_para_frac:
                reason = "dup_para_frac"
            elif reason is None and pcf > cfg.max_dup_para_char_frac:
                reason = "dup_para_char_frac"
        return reason


STEPS = {"repetition": (RepetitionConfig, Repetition)}
