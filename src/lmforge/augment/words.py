"""EDA's four word operations on jieba words, Chinese-aware.

A text is cut by jieba into *tokens* whose concatenation is the text, byte for byte (jieba keeps
spaces and punctuation as tokens of their own). Tokens made only of punctuation, symbols or
whitespace are *fixed*: no operation deletes, moves or inserts one, so the sequence of
punctuation marks (and every space) of a copy is the original's. The operations act on the
*content words* between them, and a copy is the tokens joined with ``""``: no space is ever
introduced.

``n`` words change per copy, ``n = max(1, round(rate * content words))`` (EDA's alpha):

- ``delete``: remove ``n`` content words (at least one content word always stays). EDA deletes
  each word with probability ``rate``; an exact count makes the rate a promise, not an average;
- ``swap``: ``n`` times, exchange two content words;
- ``synonym``: replace ``n`` distinct content words that have synonyms (stopwords excluded, as in
  EDA) by a random synonym each;
- ``insert``: ``n`` times, insert a random synonym of a random content word next to a random
  content word.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable

import numpy as np

EDA_OPS = ("delete", "swap", "insert", "synonym")


def cut(text: str) -> list[str]:
    """jieba tokens of ``text``; ``"".join(cut(text)) == text``."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.lcut(text)


def is_fixed(token: str) -> bool:
    """Punctuation, symbols and whitespace: tokens no operation touches."""
    return all(c.isspace() or unicodedata.category(c)[0] in "PSZC" for c in token)


def is_cjk_word(token: str) -> bool:
    """Only CJK ideographs (one tokenizer token per character in our WordPiece vocabulary)."""
    return bool(token) and all(
        "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" or "\uf900" <= c <= "\ufaff"
        for c in token
    )


def content_positions(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if not is_fixed(t)]


def n_changes(tokens: list[str], rate: float) -> int:
    """How many words a copy changes: ``max(1, round(rate * content words))``."""
    return max(1, int(round(rate * len(content_positions(tokens)))))


Synonyms = Callable[[str], list[str]]


def random_delete(tokens: list[str], n: int, rng: np.random.Generator) -> list[str] | None:
    content = content_positions(tokens)
    if len(content) < 2:
        return None
    drop = set(rng.choice(content, size=min(n, len(content) - 1), replace=False).tolist())
    return [t for i, t in enumerate(tokens) if i not in drop]


def random_swap(tokens: list[str], n: int, rng: np.random.Generator) -> list[str] | None:
    content = content_positions(tokens)
    if len(content) < 2:
        return None
    out = list(tokens)
    for _ in range(n):
        a, b = rng.choice(content, size=2, replace=False).tolist()
        out[a], out[b] = out[b], out[a]
    return out


def _replaceable(tokens: list[str], synonyms: Synonyms, stop: frozenset[str]) -> list[int]:
    return [i for i in content_positions(tokens) if tokens[i] not in stop and synonyms(tokens[i])]


def synonym_replace(
    tokens: list[str], n: int, rng: np.random.Generator, synonyms: Synonyms, stop: frozenset[str]
) -> list[str] | None:
    candidates = _replaceable(tokens, synonyms, stop)
    if not candidates:
        return None
    out = list(tokens)
    for i in rng.choice(candidates, size=min(n, len(candidates)), replace=False).tolist():
        options = synonyms(out[i])
        out[i] = options[int(rng.integers(len(options)))]
    return out


def random_insert(
    tokens: list[str], n: int, rng: np.random.Generator, synonyms: Synonyms, stop: frozenset[str]
) -> list[str] | None:
    candidates = _replaceable(tokens, synonyms, stop)
    if not candidates:
        return None
    out = list(tokens)
    for _ in range(n):
        source = tokens[candidates[int(rng.integers(len(candidates)))]]
        options = synonyms(source)
        new = options[int(rng.integers(len(options)))]
        content = content_positions(out)
        at = content[int(rng.integers(len(content)))] + int(rng.integers(2))  # before or after
        out.insert(at, new)
    return out
