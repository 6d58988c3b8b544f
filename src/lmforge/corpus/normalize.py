"""Text normalization: mojibake, HTML entities, control characters, NFKC / full-width, t2s, whitespace.

Each sub-step is switchable and runs only on documents a cheap check (a precompiled
regex search, or ``unicodedata.is_normalized``) says it could change, so a clean
document costs a few regex scans. Sub-steps run in this order:

1. ``fix_mojibake``: ftfy's ``fix_encoding`` (UTF-8 read as Latin-1 / cp1252, e.g.
   "æ‰‹æœº" → "手机"), only where a Latin-1-lead-byte + continuation pair occurs;
2. ``html_entities``: ``html.unescape`` where an entity (``&amp;``, ``&#183;``) occurs;
3. ``control_chars``: C0 / C1 controls and zero-width characters removed (tab and newline
   kept), CR LF and CR become LF;
4. ``nfkc``: Unicode NFKC, which also turns full-width ASCII (U+FF01–FF5E) into ASCII and
   the ideographic space into a space. Chinese punctuation stays full-width when
   ``keep_cjk_punct``: NFKC would turn ，！？：；（） (U+FF0C FF01 FF1F FF1A FF1B FF08 FF09)
   into ASCII and … (U+2026) into "...", so those eight are shielded; 。、“”‘’《》【】—·
   are not changed by NFKC. ～ (U+FF5E) becomes "~" like the rest of the full-width
   ASCII block. With ``nfkc`` off, ``fullwidth_ascii`` does only the full-width → ASCII
   part with a translate table (same shielded set);
5. ``t2s``: traditional → simplified Chinese with OpenCC (config ``t2s``);
6. ``whitespace``: runs of spaces/tabs → one space, spaces around newlines removed, three
   or more newlines → a blank line, leading/trailing whitespace stripped; with
   ``keep_newlines`` off every newline becomes a space.

Counters: ``changed`` (documents whose text changed) and ``normalize:<sub-step>``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import cache
from typing import Literal

from pydantic import BaseModel

from lmforge.corpus.step import TextStep

CJK_PUNCT_KEPT = "，！？：；（）…"
_CJK_PUNCT_RE = re.compile(f"[{CJK_PUNCT_KEPT}]")
_SHIELD_BASE = 0xF0000  # supplementary private use area: NFKC leaves it alone
_SHIELD_PAIRS = [(c, chr(_SHIELD_BASE + i)) for i, c in enumerate(CJK_PUNCT_KEPT)]


def _shield(text: str) -> str:
    # a chain of str.replace is ~10x faster than str.translate with a non-ASCII table
    for c, s in _SHIELD_PAIRS:
        if c in text:
            text = text.replace(c, s)
    return text


def _unshield(text: str) -> str:
    for c, s in _SHIELD_PAIRS:
        if s in text:
            text = text.replace(s, c)
    return text


_MOJIBAKE = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6"
    "\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200d\u2060\ufeff]|\r\n?")
_SPACES = re.compile(
    "[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]{2,}|[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"
)
_SPACE_AROUND_NL = re.compile(r" *\n *")
_MANY_NL = re.compile(r"\n{3,}")
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F) if chr(c) not in CJK_PUNCT_KEPT}
_FULLWIDTH[0x3000] = 0x20


@cache
def _nfkc_trigger() -> re.Pattern:
    """Characters NFKC could change (besides the shielded punctuation): a cheap pre-check."""
    chars = []
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        if c in CJK_PUNCT_KEPT:
            continue
        if (
            unicodedata.normalize("NFKC", c) != c
            or unicodedata.combining(c)
            or unicodedata.category(c) == "Mn"
        ):
            chars.append(c)
    chars += [chr(cp) for cp in range(0x1100, 0x1200)]  # conjoining jamo compose under NFKC
    ranges = []
    for cp in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    # astral blocks with compatibility mappings: math alphanumerics, enclosed, CJK compat, ...
    body += "\U0001d400-\U0001d7ff\U0001ee00-\U0001eeff\U0001f100-\U0001f1ff\U0001fbf0-\U0001fbf9\U0002f800-\U0002fa1f"
    return re.compile(f"[{body}]")


@cache
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


class NormalizeConfig(BaseModel, extra="forbid"):
    """Which normalization sub-steps run (all on by default)."""

    type: Literal["normalize"] = "normalize"
    enabled: bool = True
    fix_mojibake: bool = True
    html_entities: bool = True
    control_chars: bool = True
    nfkc: bool = True
    fullwidth_ascii: bool = True
    keep_cjk_punct: bool = True
    t2s: bool = True
    opencc_config: str = "t2s"
    whitespace: bool = True
    keep_newlines: bool = True


class Normalize(TextStep):
    name = "normalize"

    def __init__(self, config: NormalizeConfig | None = None) -> None:
        self.config = config or NormalizeConfig()
        cfg = self.config
        self._trigger = _nfkc_trigger() if cfg.nfkc else None
        self._cc = _opencc(cfg.opencc_config) if cfg.t2s else None
        fullwidth = dict(_FULLWIDTH)
        if not cfg.keep_cjk_punct:
            fullwidth.update({ord(c): ord(c) - 0xFEE0 for c in CJK_PUNCT_KEPT if c != "…"})
        self._fullwidth = fullwidth

    def normalize(self, text: str, counts: dict[str, int] | None = None) -> str:
        """The normalized text; ``counts`` (if given) gets +1 per sub-step that changed it."""
        cfg = self.config
        counts = {} if counts is None else counts

        def bump(key: str) -> None:
            counts[key] = counts.get(key, 0) + 1

        if cfg.fix_mojibake and _MOJIBAKE.search(text):
            import ftfy

            fixed = ftfy.fix_encoding(text)
            if fixed != text:
                text = fixed
                bump("normalize:mojibake")
        if cfg.html_entities and "&" in text and _ENTITY.search(text):
            text = html.unescape(text)
            bump("normalize:html")
        if cfg.control_chars and _CONTROL.search(text):
            text = _CONTROL.sub(lambda m: "\n" if m.group()[0] == "\r" else "", text)
            bump("normalize:control")
        if self._trigger is not None:
            if self._trigger.search(text) or (
                not cfg.keep_cjk_punct and _CJK_PUNCT_RE.search(text)
            ):
                if cfg.keep_cjk_punct:
                    new = _unshield(unicodedata.normalize("NFKC", _shield(text)))
                else:
                    new = unicodedata.normalize("NFKC", text)
                if new != text:
                    text = new
                    bump("normalize:nfkc")
        elif cfg.fullwidth_ascii:
            new = text.translate(self._fullwidth)
            if new != text:
                text = new
                bump("normalize:fullwidth")
        if self._cc is not None:
            new = self._cc.convert(text)
            if new != text:
                text = new
                bump("normalize:t2s")
        if cfg.whitespace:
            new = text
            if not cfg.keep_newlines and "\n" in new:
                new = new.replace("\n", " ")
            new = _SPACES.sub(" ", new)
            if "\n" in new:
                new = _MANY_NL.sub("\n\n", _SPACE_AROUND_NL.sub("\n", new))
            new = new.strip()
            if new != text:
                text = new
                bump("normalize:whitespace")
        return text

    transform = normalize


STEPS = {"normalize": (NormalizeConfig, Normalize)}
