"""Offline language identification: a script fast path for clearly-Chinese text, py3langid otherwise.

Model: py3langid's naive-Bayes byte n-gram model (the langid.py model, 97 + languages;
``py3langid/data/model.npz.xz`` inside the PyPI wheel, ~4.5 MB). Chosen because it ships
inside the package (no download at run time, unlike fastText lid.176 / GlotLID, which are
separate model files) and is fast enough with the fast path; lingua is far slower.

Fast path: a text whose letters are at least ``fast_path_min_han`` Han characters and
that has no kana or Hangul (which would make it Japanese or Korean) is Chinese. That is
what the classifier says anyway for such texts (measured agreement in docs/filters.md),
at a fraction of the cost: py3langid walks every byte in Python (~100 µs per review).
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, Field

from lmforge.corpus.document import Document
from lmforge.corpus.filters import charclass as cc
from lmforge.corpus.step import Step, StepLog


@cache
def identifier():
    """The py3langid identifier with probabilities normalised (loaded once per process)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


class LanguageConfig(BaseModel, extra="forbid"):
    """Keep documents in ``allowed`` languages (ISO 639-1, as py3langid names them)."""

    type: Literal["language"] = "language"
    enabled: bool = True
    allowed: list[str] = Field(default_factory=lambda: ["zh", "en"])
    min_score: float = Field(0.5, ge=0, le=1)
    aliases: dict[str, str] = Field(
        default_factory=lambda: {"wuu": "zh", "yue": "zh", "lzh": "zh"},
        description="labels merged before the check (Wu / Cantonese / Classical are written in Han)",
    )
    fast_path_min_han: float = Field(
        0.5,
        ge=0,
        le=1.01,
        description="Han share of letters above which a text is Chinese; >1 disables",
    )
    max_chars: int = Field(2000, ge=1, description="only the first characters are classified")


class Language(Step):
    name = "language"

    def __init__(self, config: LanguageConfig | None = None) -> None:
        self.config = config or LanguageConfig()

    def classify(self, text: str) -> tuple[str, float]:
        lang, score = identifier().classify(text[: self.config.max_chars])
        return lang, float(score)

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        if not docs:
            return docs
        cfg = self.config
        counts = cc.class_counts([d.text for d in docs])
        letters = cc.letters(counts)
        han_share = (counts[:, cc.HAN] / (letters + (letters == 0))).tolist()
        jk = (counts[:, cc.KANA] + counts[:, cc.HANGUL]).tolist()
        allowed = set(cfg.allowed)
        kept = []
        fast = 0
        for i, doc in enumerate(docs):
            if jk[i] == 0 and han_share[i] >= cfg.fast_path_min_han:
                lang, score = "zh", 1.0
                fast += 1
            else:
                lang, score = self.classify(doc.text)
                lang = cfg.aliases.get(lang, lang)
                score = round(score, 4)
            scores = cc.scores_of(doc.meta)
            scores["lang"] = lang
            scores["lang_score"] = score
            if lang not in allowed:
                log.remove(doc, f"lang:{lang}")
            elif score < cfg.min_score:
                log.remove(doc, "lang_score")
            else:
                kept.append(doc)
        log.count("lang_fast_path", fast)
        return kept


STEPS = {"language": (LanguageConfig, Language)}
