"""Filters on per-document character statistics: length, script, symbol/digit/punctuation ratios.

All three compute their statistics for the whole batch at once with
:func:`~lmforge.corpus.filters.charclass.class_counts` and store them in
``doc.meta["scores"]`` whether the document is kept or not.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from lmforge.corpus.document import Document
from lmforge.corpus.filters import charclass as cc
from lmforge.corpus.step import Step, StepLog

_SCRIPT_COLUMNS = {
    "han": cc.HAN,
    "kana": cc.KANA,
    "hangul": cc.HANGUL,
    "latin": cc.LATIN,
    "other": cc.OTHER_LETTER,
}


class LengthConfig(BaseModel, extra="forbid"):
    """Keep documents whose length is inside [min, max].

    Characters are counted for every document (``scores.length``). Documents
    written mostly in a space-separated script (CJK letters < half of all
    letters) are also measured in words (``scores.words``) and must pass
    ``min_words``/``max_words`` too.
    """

    type: Literal["length"] = "length"
    enabled: bool = True
    min_chars: int = Field(5, ge=0)
    max_chars: int = Field(100_000, ge=1)
    min_words: int = Field(3, ge=0)
    max_words: int = Field(20_000, ge=1)


class Length(Step):
    name = "length"

    def __init__(self, config: LengthConfig | None = None) -> None:
        self.config = config or LengthConfig()

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        if not docs:
            return docs
        cfg = self.config
        counts = cc.class_counts([d.text for d in docs])
        cjk = counts[:, cc.HAN] + counts[:, cc.KANA] + counts[:, cc.HANGUL]
        spaced = (cjk * 2 < cc.letters(counts)).tolist()
        kept = []
        for doc, is_spaced in zip(docs, spaced, strict=True):
            n = len(doc.text)
            scores = cc.scores_of(doc.meta)
            scores["length"] = n
            if n < cfg.min_chars:
                log.remove(doc, "too_short")
                continue
            if n > cfg.max_chars:
                log.remove(doc, "too_long")
                continue
            if is_spaced:
                words = len(doc.text.split())
                scores["words"] = words
                if words < cfg.min_words:
                    log.remove(doc, "too_few_words")
                    continue
                if words > cfg.max_words:
                    log.remove(doc, "too_many_words")
                    continue
            kept.append(doc)
        return kept


class ScriptConfig(BaseModel, extra="forbid"):
    """Keep documents written in the allowed scripts.

    ``scores.cjk_ratio`` = Han / all letters; ``scores.script`` = the most frequent
    script; ``scores.script_ratio`` = letters of allowed scripts / all letters.
    A document without a single letter is removed as ``no_letters``.
    """

    type: Literal["script"] = "script"
    enabled: bool = True
    allowed_scripts: list[Literal["han", "kana", "hangul", "latin", "other"]] = Field(
        default_factory=lambda: ["han", "latin"]
    )
    min_script_ratio: float = Field(0.8, ge=0, le=1)
    min_cjk_ratio: float = Field(0.0, ge=0, le=1, description="0.3+ for a Chinese-only corpus")


class Script(Step):
    name = "script"

    def __init__(self, config: ScriptConfig | None = None) -> None:
        self.config = config or ScriptConfig()
        self._allowed = [_SCRIPT_COLUMNS[s] for s in self.config.allowed_scripts]
        self._names = list(_SCRIPT_COLUMNS)

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        if not docs:
            return docs
        cfg = self.config
        counts = cc.class_counts([d.text for d in docs])
        per_script = counts[:, list(_SCRIPT_COLUMNS.values())]
        total = per_script.sum(axis=1)
        safe = np.maximum(total, 1)
        cjk_ratio = (counts[:, cc.HAN] / safe).round(4).tolist()
        allowed_ratio = (counts[:, self._allowed].sum(axis=1) / safe).round(4).tolist()
        top = per_script.argmax(axis=1).tolist()
        kept = []
        for i, doc in enumerate(docs):
            scores = cc.scores_of(doc.meta)
            scores["cjk_ratio"] = cjk_ratio[i]
            scores["script_ratio"] = allowed_ratio[i]
            if total[i] == 0:
                scores["script"] = "none"
                log.remove(doc, "no_letters")
                continue
            scores["script"] = self._names[top[i]]
            if allowed_ratio[i] < cfg.min_script_ratio:
                log.remove(doc, f"script:{self._names[top[i]]}")
                continue
            if cjk_ratio[i] < cfg.min_cjk_ratio:
                log.remove(doc, "cjk_ratio")
                continue
            kept.append(doc)
        return kept


class SymbolsConfig(BaseModel, extra="forbid"):
    """Remove documents made mostly of symbols, punctuation or digits.

    Ratios are over non-space characters: ``scores.symbol_ratio`` (S* — currency,
    math, emoji, box drawing), ``scores.punct_ratio`` (P*), ``scores.digit_ratio``,
    ``scores.letter_ratio`` (letters of any script).
    """

    type: Literal["symbols"] = "symbols"
    enabled: bool = True
    max_symbol_ratio: float = Field(0.2, ge=0, le=1)
    max_punct_ratio: float = Field(0.5, ge=0, le=1)
    max_digit_ratio: float = Field(0.5, ge=0, le=1)
    min_letter_ratio: float = Field(0.4, ge=0, le=1)


class Symbols(Step):
    name = "symbols"

    def __init__(self, config: SymbolsConfig | None = None) -> None:
        self.config = config or SymbolsConfig()

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        if not docs:
            return docs
        cfg = self.config
        counts = cc.class_counts([d.text for d in docs])
        nonspace = np.maximum(counts.sum(axis=1) - counts[:, cc.SPACE], 1)
        ratios = {
            "symbol_ratio": counts[:, cc.SYMBOL] / nonspace,
            "punct_ratio": counts[:, cc.PUNCT] / nonspace,
            "digit_ratio": counts[:, cc.DIGIT] / nonspace,
            "letter_ratio": cc.letters(counts) / nonspace,
        }
        columns = {k: v.round(4).tolist() for k, v in ratios.items()}
        rules = (
            ("symbol_ratio", cfg.max_symbol_ratio, 1),
            ("punct_ratio", cfg.max_punct_ratio, 1),
            ("digit_ratio", cfg.max_digit_ratio, 1),
            ("letter_ratio", cfg.min_letter_ratio, -1),
        )
        kept = []
        for i, doc in enumerate(docs):
            scores = cc.scores_of(doc.meta)
            reason = None
            for key, limit, sign in rules:
                value = columns[key][i]
                scores[key] = value
                if reason is None and (value - limit) * sign > 0:
                    reason = key
            if reason:
                log.remove(doc, reason)
            else:
                kept.append(doc)
        return kept


STEPS = {
    "length": (LengthConfig, Length),
    "script": (ScriptConfig, Script),
    "symbols": (SymbolsConfig, Symbols),
}
