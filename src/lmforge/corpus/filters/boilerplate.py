"""URL-heavy documents, site boilerplate lines (navigation bars, footers) and bad words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from lmforge.corpus.document import Document
from lmforge.corpus.filters import charclass as cc
from lmforge.corpus.step import Step, StepLog
from lmforge.errors import LmforgeError

URL_RE = re.compile(r"(?:[Hh][Tt][Tt][Pp][Ss]?://|[Ff][Tt][Pp]://|[Ww]{3}\.)[!-~]+")
_ASCII_WORD = re.compile(r"[A-Za-z]{2}")

# Phrases of site chrome (navigation bars, footers, cookie banners). A line is boilerplate
# when it holds at least ``min_phrases`` *different* ones: one alone occurs in normal text
# ("请联系我们"), a navigation bar strings many together.
DEFAULT_PHRASES = [
    "网站导航", "网站地图", "联系我们", "关于我们", "免费注册", "会员注册", "用户登录",
    "设为首页", "加入收藏", "返回顶部", "友情链接", "版权所有", "版权声明", "免责声明",
    "隐私政策", "隐私保护", "服务条款", "使用条款", "用户协议", "服务说明", "帮助中心",
    "意见反馈", "诚聘英才", "招聘信息", "人才招聘", "广告业务", "广告服务", "广告合作",
    "代理合作", "商务合作", "合作伙伴", "投诉建议", "站点地图", "客服中心", "ICP备",
    "all rights reserved", "privacy policy", "terms of use", "terms of service",
    "contact us", "about us", "cookie policy", "sign in", "sign up", "site map",
]  # fmt: skip


class BoilerplateConfig(BaseModel, extra="forbid"):
    """Remove URL-heavy documents and documents that are mostly boilerplate lines.

    ``scores.url_ratio``: characters inside URLs / all characters.
    ``scores.boilerplate_frac``: characters in boilerplate lines / all characters. Below
    ``max_boilerplate_frac`` the boilerplate lines are cut out of the document (if
    ``drop_lines``) and the rest is kept.
    """

    type: Literal["boilerplate"] = "boilerplate"
    enabled: bool = True
    max_url_ratio: float = Field(0.3, ge=0, le=1)
    phrases: list[str] = Field(default_factory=lambda: list(DEFAULT_PHRASES))
    min_phrases: int = Field(2, ge=1)
    max_boilerplate_frac: float = Field(0.5, ge=0, le=1)
    drop_lines: bool = True


class Boilerplate(Step):
    name = "boilerplate"

    def __init__(self, config: BoilerplateConfig | None = None) -> None:
        self.config = config or BoilerplateConfig()
        # re.IGNORECASE makes a long alternation ~20x slower: CJK phrases are matched as
        # they are, the others against the lower-cased text
        phrases = sorted({p for p in self.config.phrases if p.strip()}, key=len, reverse=True)
        cjk = [re.escape(p) for p in phrases if not p.isascii()]
        ascii_ = sorted(
            {re.escape(p.lower()) for p in phrases if p.isascii()}, key=len, reverse=True
        )
        self._cjk_re = re.compile("|".join(cjk)) if cjk else None
        self._ascii_re = re.compile("|".join(ascii_)) if ascii_ else None
        self._phrase_re = self._cjk_re or self._ascii_re

    def _phrases_in(self, text: str) -> list[str]:
        found = self._cjk_re.findall(text) if self._cjk_re else []
        if self._ascii_re is not None and _ASCII_WORD.search(text):
            found += self._ascii_re.findall(text.lower())
        return found

    def is_boilerplate_line(self, line: str) -> bool:
        return len(set(self._phrases_in(line))) >= self.config.min_phrases

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        cfg = self.config
        kept = []
        for doc in docs:
            text = doc.text
            scores = cc.scores_of(doc.meta)
            n = max(len(text), 1)
            url_chars = (
                sum(len(m) for m in URL_RE.findall(text)) if "://" in text or "www." in text else 0
            )
            scores["url_ratio"] = round(url_chars / n, 4)
            if url_chars / n > cfg.max_url_ratio:
                log.remove(doc, "url_ratio")
                continue
            frac = 0.0
            if self._phrase_re is not None and self._phrases_in(text):
                lines = text.split("\n")
                bad = [self.is_boilerplate_line(line) for line in lines]
                if any(bad):
                    frac = sum(len(line) for line, b in zip(lines, bad, strict=True) if b) / n
                    if frac < cfg.max_boilerplate_frac and cfg.drop_lines:
                        doc.text = "\n".join(
                            line for line, b in zip(lines, bad, strict=True) if not b
                        )
                        log.count("boilerplate_lines_dropped", sum(bad))
            scores["boilerplate_frac"] = round(frac, 4)
            if frac >= cfg.max_boilerplate_frac:
                log.remove(doc, "boilerplate")
                continue
            kept.append(doc)
        return kept


class BadwordsConfig(BaseModel, extra="forbid"):
    """Remove documents containing more than ``max_hits`` words of a user-supplied list.

    Words come from ``words`` and/or ``path`` (UTF-8, one per line, ``#`` comments). Words
    with a CJK character match as substrings (Chinese has no word boundaries); others match
    as whole words, case-insensitively. The default list is empty: which words are "bad"
    depends on the corpus and its use. ``scores.badwords`` = number of hits.
    """

    type: Literal["badwords"] = "badwords"
    enabled: bool = True
    words: list[str] = Field(default_factory=list)
    path: str | None = None
    max_hits: int = Field(0, ge=0)


_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def load_word_list(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LmforgeError(f"badwords: cannot read word list {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise LmforgeError(f"badwords: word list {path} is not UTF-8") from exc
    return [w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#")]


class Badwords(Step):
    name = "badwords"

    def __init__(self, config: BadwordsConfig | None = None) -> None:
        self.config = config or BadwordsConfig()
        words = list(self.config.words)
        if self.config.path:
            words += load_word_list(self.config.path)
        words = sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)
        cjk = [re.escape(w) for w in words if _CJK_CHAR.search(w)]
        other = [re.escape(w) for w in words if not _CJK_CHAR.search(w)]
        parts = []
        if cjk:
            parts.append("|".join(cjk))
        if other:
            parts.append(r"(?<![A-Za-z0-9_])(?:" + "|".join(other) + r")(?![A-Za-z0-9_])")
        self._re = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def process(self, docs: list[Document], log: StepLog) -> list[Document]:
        if self._re is None:
            return docs
        kept = []
        for doc in docs:
            hits = len(self._re.findall(doc.text))
            cc.scores_of(doc.meta)["badwords"] = hits
            if hits > self.config.max_hits:
                log.remove(doc, "badword")
            else:
                kept.append(doc)
        return kept


STEPS = {
    "boilerplate": (BoilerplateConfig, Boilerplate),
    "badwords": (BadwordsConfig, Badwords),
}
