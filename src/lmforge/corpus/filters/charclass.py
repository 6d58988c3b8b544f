"""Per-character classes and per-document class counts for a whole batch at once (numpy).

Every filter that needs "how many Han characters / letters / digits / punctuation
marks does this document have" reads them from :func:`class_counts`, which turns a
batch into one array of code points, looks each up in a 0x110000-entry class table
and sums per document with ``np.bincount``. No per-character Python loop.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import numpy as np

# Character classes (column index in the counts matrix).
HAN = 0  # CJK ideographs (all extensions, compatibility ideographs, 〇)
KANA = 1  # hiragana, katakana
HANGUL = 2
LATIN = 3  # Latin letters (ASCII, Latin-1, Latin Extended)
OTHER_LETTER = 4  # letters of every other script (Cyrillic, Greek, Arabic, ...)
DIGIT = 5  # decimal digits (Nd)
SPACE = 6  # whitespace
PUNCT = 7  # punctuation (P*), ASCII and CJK
SYMBOL = 8  # symbols (S*): currency, math, emoji, box drawing, ...
OTHER = 9  # marks, controls, format, private use, unassigned
N_CLASSES = 10

CLASS_NAMES = (
    "han",
    "kana",
    "hangul",
    "latin",
    "other_letter",
    "digit",
    "space",
    "punct",
    "symbol",
    "other",
)

_HAN_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2FA1F),
    (0x30000, 0x323AF),
)
_KANA_RANGES = ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0x1B000, 0x1B16F))
_HANGUL_RANGES = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF))
_LATIN_RANGES = (
    (0x0041, 0x024F),
    (0x1E00, 0x1EFF),
    (0x2C60, 0x2C7F),
    (0xA720, 0xA7FF),
    (0xFF21, 0xFF5A),
)
_EMOJI_RANGES = ((0x1F000, 0x1FAFF),)


@cache
def class_table() -> np.ndarray:
    """uint8 class of every code point (built once per process, ~50 ms)."""
    table = np.full(0x110000, OTHER, dtype=np.uint8)
    by_category = {"L": OTHER_LETTER, "N": OTHER, "Z": SPACE, "P": PUNCT, "S": SYMBOL}
    for cp in range(0x10000):
        cat = unicodedata.category(chr(cp))
        cls = by_category.get(cat[0], OTHER)
        if cat == "Nd":
            cls = DIGIT
        table[cp] = cls
    for ch in "\t\n\r\x0b\x0c":
        table[ord(ch)] = SPACE
    for lo, hi in _EMOJI_RANGES:
        table[lo : hi + 1] = SYMBOL
    for ranges, cls in (
        (_LATIN_RANGES, LATIN),
        (_KANA_RANGES, KANA),
        (_HANGUL_RANGES, HANGUL),
        (_HAN_RANGES, HAN),
    ):
        for lo, hi in ranges:
            block = table[lo : hi + 1]
            if cls in (HAN, KANA, HANGUL) or hi >= 0x10000:
                # everything assigned in these blocks counts (astral blocks have no table yet)
                keep = block != SPACE
            else:
                keep = block == OTHER_LETTER
            block[keep] = cls
    # ASCII letters: not letters of "other" scripts; NB × and ÷ (U+00D7/F7) stay symbols
    table[0x30:0x3A] = DIGIT
    table[0x3007] = HAN  # 〇
    table[0xD7] = SYMBOL
    table[0xF7] = SYMBOL
    return table


def codepoints(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one uint32 code-point array, plus document start offsets (len n+1)."""
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lens, out=starts[1:])
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    return cps, starts


def class_counts(texts: list[str]) -> np.ndarray:
    """int64 matrix (documents × N_CLASSES): how many characters of each class each text has."""
    if not texts:
        return np.zeros((0, N_CLASSES), dtype=np.int64)
    cps, starts = codepoints(texts)
    classes = class_table()[cps]
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(starts))
    flat = np.bincount(doc * N_CLASSES + classes, minlength=len(texts) * N_CLASSES)
    return flat.reshape(len(texts), N_CLASSES)


def letters(counts: np.ndarray) -> np.ndarray:
    """Letters of any script per document (Han + kana + Hangul + Latin + other)."""
    return (
        counts[:, HAN]
        + counts[:, KANA]
        + counts[:, HANGUL]
        + counts[:, LATIN]
        + counts[:, OTHER_LETTER]
    )


def scores_of(doc_meta: dict) -> dict:
    """The ``scores`` dict inside a document's metadata (created on first use)."""
    scores = doc_meta.get("scores")
    if scores is None:
        scores = doc_meta["scores"] = {}
    return scores
