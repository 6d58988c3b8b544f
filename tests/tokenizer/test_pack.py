"""Token shards: document boundaries, split determinism, dtype, empty documents, loading."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from transformers import AutoTokenizer

from lmforge.errors import LmforgeError
from lmforge.tokenizer.corpus_reader import heldout_text_digests, validation_mask
from lmforge.tokenizer.pack import SplitWriter, load_split, pack_corpus, token_dtype

EMPTY = [("empty-1", ""), ("empty-2", "   \n "), ("empty-3", None)]


@pytest.fixture(scope="module")
def docs(train_docs) -> list[tuple[str, str | None]]:
    chosen = train_docs[::4] + EMPTY  # ~700 documents
    random.Random(1).shuffle(chosen)
    return chosen


@pytest.fixture(scope="module")
def packed(tmp_path_factory, docs, wordpiece_dir, make_corpus):
    root = tmp_path_factory.mktemp("pack")
    corpus = make_corpus(root / "corpus", docs, per_shard=300)
    manifest = pack_corpus(corpus, wordpiece_dir, root / "tokens", val_fraction=0.2, seed=3)
    return root / "tokens", manifest


def split_docs(docs, val_fraction, seed, split):
    mask = validation_mask([d[0] for d in docs], val_fraction, seed)
    return [d for d, v in zip(docs, mask, strict=True) if v == (split == "validation")]


def test_manifest_and_self_contained_folder(packed, docs):
    out, manifest = packed
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["dtype"] == "uint16" and manifest["vocab_size"] <= 4000
    assert manifest["tokenizer"] == "tokenizer"
    assert AutoTokenizer.from_pretrained(out / "tokenizer")("你好")["input_ids"]
    assert manifest["seed"] == 3 and manifest["val_fraction"] == 0.2
    assert manifest["tokens_per_second"] > 0 and manifest["seconds"] > 0
    splits = manifest["splits"]
    assert set(splits) == {"train", "validation"}
    assert splits["train"]["shards"] == ["train-00000.npy"]
    assert sum(s["documents"] + s["empty_documents"] for s in splits.values()) == len(docs)
    assert sum(s["empty_documents"] for s in splits.values()) == len(EMPTY)
    assert 0.1 < splits["validation"]["documents"] / len(docs) < 0.3
    assert not list(out.glob(".*"))  # no temporary files left


@pytest.mark.parametrize("split", ["train", "validation"])
def test_offsets_are_document_boundaries(packed, docs, wordpiece_dir, split):
    out, manifest = packed
    tok = AutoTokenizer.from_pretrained(wordpiece_dir)
    expected = [t for _, t in split_docs(docs, 0.2, 3, split) if t and t.strip()]
    [(tokens, offsets)] = load_split(out, split)
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16
    assert offsets.dtype == np.int64 and offsets[0] == 0 and offsets[-1] == len(tokens)
    assert len(offsets) == len(expected) + 1 == manifest["splits"][split]["documents"] + 1
    assert len(tokens) == manifest["splits"][split]["tokens"]
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    assert not special & set(np.unique(tokens).tolist())  # no [CLS]/[SEP] in the shards
    for d, text in enumerate(expected):
        ids = tokens[offsets[d] : offsets[d + 1]].tolist()
        assert ids == tok(text, add_special_tokens=False)["input_ids"]
        if tok.unk_token_id not in ids:
            normalized = tok.backend_tokenizer.normalizer.normalize_str(text)
            assert "".join(tok.decode(ids).split()) == "".join(normalized.split())


def test_split_is_deterministic_and_order_independent(
    tmp_path, packed, docs, wordpiece_dir, make_corpus
):
    out, manifest = packed

    def validation_docs(folder):
        [(tokens, offsets)] = load_split(folder, "validation")
        return sorted(
            tuple(tokens[a:b].tolist()) for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        )

    shuffled = list(reversed(docs))
    corpus = make_corpus(tmp_path / "corpus", shuffled, per_shard=128)
    again = pack_corpus(corpus, wordpiece_dir, tmp_path / "tokens", val_fraction=0.2, seed=3)
    assert validation_docs(tmp_path / "tokens") == validation_docs(out)
    for split in ("train", "validation"):
        for key in ("tokens", "documents", "empty_documents"):
            assert again["splits"][split][key] == manifest["splits"][split][key]

    # same corpus, same seed: byte-identical shards; another seed: another split
    pack_corpus(corpus, wordpiece_dir, tmp_path / "again", val_fraction=0.2, seed=3)
    for name in ("train-00000.npy", "validation-00000.idx.npy"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "tokens" / name).read_bytes()
    pack_corpus(corpus, wordpiece_dir, tmp_path / "other", val_fraction=0.2, seed=4)
    assert validation_docs(tmp_path / "other") != validation_docs(out)


def test_exclude_train_keeps_copies_of_heldout_text_out(tmp_path, docs, wordpiece_dir, make_corpus):
    # a deduplicated corpus and one that keeps copies of its documents under other ids (what an
    # ablation's raw / no-dedup variants hold): packed with the first's held-out texts excluded,
    # the second trains on none of them, and the copies left out are counted
    clean = make_corpus(tmp_path / "clean", docs, per_shard=300)
    heldout = [t for _, t in split_docs(docs, 0.2, 3, "validation") if t and t.strip()]
    copies = [(f"copy-{i}", t) for i, t in enumerate(heldout)]
    dup = make_corpus(tmp_path / "dup", docs + copies, per_shard=300)
    copies_in_train = int((~validation_mask([c[0] for c in copies], 0.2, 3)).sum())
    assert copies_in_train > 0
    # the real reviews repeat themselves too: some of those copies sit in the train split already
    in_train = ~validation_mask([d[0] for d in docs + copies], 0.2, 3)
    held = set(heldout)
    expected = sum(
        1 for (_, t), tr in zip(docs + copies, in_train, strict=True) if tr and t in held
    )
    assert expected > copies_in_train

    def train_docs(folder):
        [(tokens, offsets)] = load_split(folder, "train")
        return {tuple(tokens[a:b].tolist()) for a, b in zip(offsets[:-1], offsets[1:], strict=True)}

    tok = AutoTokenizer.from_pretrained(wordpiece_dir)
    heldout_ids = {tuple(tok(t, add_special_tokens=False)["input_ids"]) for t in heldout}
    plain = pack_corpus(dup, wordpiece_dir, tmp_path / "plain", val_fraction=0.2, seed=3)
    assert plain["excluded_train_documents"] == 0
    assert train_docs(tmp_path / "plain") & heldout_ids  # the leak, without the exclusion

    digests = heldout_text_digests(clean, 0.2, 3)
    assert len(digests) == len(set(heldout))
    kept = pack_corpus(
        dup, wordpiece_dir, tmp_path / "kept", val_fraction=0.2, seed=3, exclude_train=digests
    )
    assert not train_docs(tmp_path / "kept") & heldout_ids
    assert kept["excluded_train_documents"] == expected
    assert kept["splits"]["train"]["documents"] + expected == plain["splits"]["train"]["documents"]
    assert kept["splits"]["validation"] == plain["splits"]["validation"]


def test_small_shards_keep_documents_whole(tmp_path, packed, wordpiece_dir):
    out, manifest = packed
    corpus = manifest["corpus"]
    small = pack_corpus(
        corpus, wordpiece_dir, tmp_path / "small", val_fraction=0.2, seed=3, shard_tokens=2000
    )
    assert len(small["splits"]["train"]["shards"]) > 3
    pieces = load_split(tmp_path / "small", "train")
    for tokens, offsets in pieces:
        assert offsets[-1] == len(tokens)
        assert len(tokens) <= 2000 or len(offsets) == 2  # only a single long document may exceed
    [(whole, whole_offsets)] = load_split(out, "train")
    assert np.array_equal(np.concatenate([t for t, _ in pieces]), whole)
    lengths = np.concatenate([np.diff(o) for _, o in pieces])
    assert np.array_equal(lengths, np.diff(whole_offsets))
    # repacking into the same folder with bigger shards removes the stale ones
    pack_corpus(corpus, wordpiece_dir, tmp_path / "small", val_fraction=0.2, seed=3)
    assert sorted(p.name for p in (tmp_path / "small").glob("train-*")) == [
        "train-00000.idx.npy",
        "train-00000.npy",
    ]


def test_bpe_pack_round_trips_exactly(tmp_path, bpe_dir, docs, make_corpus):
    corpus = make_corpus(tmp_path / "corpus", docs[:200])
    manifest = pack_corpus(corpus, bpe_dir, tmp_path / "tokens", val_fraction=0.0, workers=1)
    assert manifest["splits"]["validation"]["documents"] == 0
    assert manifest["splits"]["validation"]["shards"] == [
        "validation-00000.npy"
    ]  # empty but present
    tok = AutoTokenizer.from_pretrained(tmp_path / "tokens" / "tokenizer")
    [(tokens, offsets)] = load_split(tmp_path / "tokens", "train")
    texts = [t for _, t in docs[:200] if t]  # byte-level BPE encodes whitespace-only text too
    assert len(offsets) - 1 == len(texts)
    for d, text in enumerate(texts):
        assert tok.decode(tokens[offsets[d] : offsets[d + 1]].tolist()) == text
    [(empty, empty_offsets)] = load_split(tmp_path / "tokens", "validation")
    assert len(empty) == 0 and empty_offsets.tolist() == [0]


def test_dtype_choice():
    assert token_dtype(8000) == np.uint16
    assert token_dtype(65535) == np.uint16
    assert token_dtype(65536) == np.uint32
    assert token_dtype(150_000) == np.uint32


def test_uint32_writer_keeps_large_ids(tmp_path):
    writer = SplitWriter(tmp_path, "train", np.dtype(np.uint32), shard_tokens=10)
    writer.add([[70_000, 1], [], [5] * 12, [2, 3]])
    info = writer.close()
    assert info == {
        "shards": ["train-00000.npy", "train-00001.npy", "train-00002.npy"],
        "tokens": 16,
        "documents": 3,
        "empty_documents": 1,
    }
    first = np.load(tmp_path / "train-00000.npy")
    assert first.dtype == np.uint32 and first.tolist() == [70_000, 1]
    assert np.load(tmp_path / "train-00001.idx.npy").tolist() == [0, 12]
    with pytest.raises(OverflowError):
        SplitWriter(tmp_path, "x", np.dtype(np.uint16), 10).add([[70_000]])


def test_user_errors(tmp_path, corpus_dir, wordpiece_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text('{"model": 1}')
    with pytest.raises(LmforgeError, match="cannot load"):
        pack_corpus(corpus_dir, broken, tmp_path / "out")
    with pytest.raises(LmforgeError, match="not found"):
        pack_corpus(tmp_path / "nope", wordpiece_dir, tmp_path / "out")
    (tmp_path / "nodata").mkdir()
    with pytest.raises(LmforgeError, match="no Parquet"):
        pack_corpus(tmp_path / "nodata", wordpiece_dir, tmp_path / "out")
    with pytest.raises(LmforgeError, match="val_fraction"):
        pack_corpus(corpus_dir, wordpiece_dir, tmp_path / "out", val_fraction=1.5)
    with pytest.raises(LmforgeError, match="manifest"):
        load_split(tmp_path / "nodata", "train")


def test_cli_pack(monkeypatch, capsys, tmp_path, corpus_dir, wordpiece_dir):
    import sys

    from lmforge import cli

    argv = ["lmforge", "tokenizer", "pack", str(corpus_dir), "--tokenizer", str(wordpiece_dir)]
    monkeypatch.setattr(
        sys, "argv", [*argv, "--out", str(tmp_path / "t"), "--val-fraction", "0.05"]
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    output = capsys.readouterr().out
    assert exit_info.value.code in (0, None), output
    assert "tokens/s" in output and "validation" in output
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["val_fraction"] == 0.05
