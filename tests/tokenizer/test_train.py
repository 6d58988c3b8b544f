"""Tokenizer training: AutoTokenizer loading, round trips, one token per Chinese character, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from lmforge.errors import LmforgeError
from lmforge.tokenizer.folder import META_FILE, copy_tokenizer, load_tokenizer
from lmforge.tokenizer.train import train_from_corpus, train_tokenizer

CJK = re.compile(r"[\u4e00-\u9fff]")


def bert_words(tok, text: str) -> list[str]:
    """The words WordPiece sees: normalized text, split on whitespace and punctuation."""
    backend = tok.backend_tokenizer
    normalized = backend.normalizer.normalize_str(text)
    return [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def test_both_kinds_load_with_auto_tokenizer(wordpiece_dir, bpe_dir, corpus_dir):
    wp = AutoTokenizer.from_pretrained(wordpiece_dir)
    assert [wp.pad_token, wp.unk_token, wp.cls_token, wp.sep_token, wp.mask_token] == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    assert wp.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [
        0,
        1,
        2,
        3,
        4,
    ]
    ids = wp("手机很好")["input_ids"]
    assert ids[0] == wp.cls_token_id and ids[-1] == wp.sep_token_id

    bpe = AutoTokenizer.from_pretrained(bpe_dir)
    assert bpe.bos_token == bpe.eos_token == "<|endoftext|>"
    assert bpe.pad_token == "<|pad|>" and bpe.pad_token_id != bpe.eos_token_id
    assert bpe.eos_token_id not in bpe("手机很好")["input_ids"]  # the training loop adds EOS

    for folder, kind, size in [(wordpiece_dir, "wordpiece", 4000), (bpe_dir, "bpe", 1500)]:
        meta = json.loads((folder / META_FILE).read_text())
        assert meta["kind"] == kind
        assert meta["vocab_size"] == len(AutoTokenizer.from_pretrained(folder)) <= size
        assert meta["trained_on"] == str(corpus_dir.resolve())
        assert meta["documents"] > 0 and meta["seconds"] >= 0
        assert meta["heldout"]["documents"] > 0


def test_wordpiece_each_chinese_character_is_one_token(wordpiece_dir, heldout_chinese):
    tok = AutoTokenizer.from_pretrained(wordpiece_dir)
    text = "".join("".join(CJK.findall(t)) for t in heldout_chinese[:50])
    tokens = tok.tokenize(text)
    assert len(tokens) == len(text)
    assert all(t in (c, "[UNK]") for t, c in zip(tokens, text, strict=True))
    assert tokens.count("[UNK]") / len(tokens) < 0.02


def test_wordpiece_round_trip_chinese(wordpiece_dir, heldout_chinese):
    tok = AutoTokenizer.from_pretrained(wordpiece_dir)
    checked = 0
    for text in heldout_chinese:
        ids = tok(text)["input_ids"]
        if tok.unk_token_id in ids:
            continue
        decoded = tok.decode(ids, skip_special_tokens=True)
        normalized = tok.backend_tokenizer.normalizer.normalize_str(text)
        assert "".join(decoded.split()) == "".join(normalized.split())
        assert decoded.split() == bert_words(tok, text)
        checked += 1
    assert (
        checked > len(heldout_chinese) // 2
    )  # small training text: long held-out docs hit rare chars


def test_wordpiece_round_trip_english_word_level(wordpiece_dir):
    tok = AutoTokenizer.from_pretrained(wordpiece_dir)
    text = "The Quick brown fox, untokenizable words: helpfulness and riverbanks!"
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    decoded = tok.decode(ids, skip_special_tokens=True)
    assert decoded.split() == bert_words(tok, text)
    assert decoded.split()[:3] == ["the", "quick", "brown"]  # lowercased by default
    pieces = tok.tokenize("untokenizable")
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])


def test_wordpiece_keeps_case_when_asked(tmp_path):
    texts = ["Hello World from Beijing 北京欢迎你"] * 20
    out = train_tokenizer(iter(texts), "wordpiece", 200, tmp_path / "cased", lowercase=False)
    tok = AutoTokenizer.from_pretrained(out)
    assert (
        tok.decode(tok("Hello World 北京")["input_ids"], skip_special_tokens=True)
        == "Hello World 北 京"
    )


def test_bpe_round_trip_is_exact(bpe_dir, heldout_chinese):
    tok = AutoTokenizer.from_pretrained(bpe_dir)
    samples = heldout_chinese[:50] + [
        "The Quick brown fox,  untokenizable!\n\tNew line",
        "混合 mixed 文本 with émojis 🙂 and ＦＵＬＬ-width ＡＢＣ，标点。",
        " leading and trailing spaces ",
    ]
    for text in samples:
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text
    assert json.loads((bpe_dir / META_FILE).read_text())["heldout"]["unk_rate"] == 0.0


def test_train_tokenizer_takes_a_one_shot_iterator(tmp_path, heldout_chinese):
    out = train_tokenizer(
        (t for t in heldout_chinese), "wordpiece", 800, tmp_path / "it", heldout=heldout_chinese[:5]
    )
    meta = json.loads((out / META_FILE).read_text())
    assert meta["documents"] == len(heldout_chinese)
    assert meta["alphabet"] <= 600  # capped at 3/4 of the vocabulary
    assert AutoTokenizer.from_pretrained(out).tokenize("你好")


@pytest.mark.parametrize(
    ("kind", "vocab_size"), [("sentencepiece", 1000), ("bpe", 100), ("wordpiece", 10)]
)
def test_bad_arguments(tmp_path, kind, vocab_size):
    with pytest.raises(LmforgeError):
        train_tokenizer(["你好"], kind, vocab_size, tmp_path / "x")


def test_no_text_to_train_on(tmp_path):
    with pytest.raises(LmforgeError, match="no text"):
        train_tokenizer([], "bpe", 1000, tmp_path / "x")


def test_bad_corpus_folders(tmp_path):
    with pytest.raises(LmforgeError, match="not found"):
        train_from_corpus(tmp_path / "missing", "wordpiece", 1000, tmp_path / "out")
    (tmp_path / "empty" / "data").mkdir(parents=True)
    with pytest.raises(LmforgeError, match="no Parquet shards"):
        train_from_corpus(tmp_path / "empty", "wordpiece", 1000, tmp_path / "out")


def test_bad_tokenizer_folders(tmp_path):
    with pytest.raises(LmforgeError, match="not found"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(LmforgeError, match="no tokenizer"):
        load_tokenizer(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(LmforgeError, match="cannot load"):
        copy_tokenizer(broken, tmp_path / "out")


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from lmforge import cli

    monkeypatch.setattr(sys, "argv", ["lmforge", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out + captured.err


def test_cli_from_copies_and_validates(monkeypatch, capsys, tmp_path, wordpiece_dir):
    out = tmp_path / "copied"
    code, output = run_cli(
        monkeypatch, capsys, "tokenizer", "train", "--from", str(wordpiece_dir), "--out", str(out)
    )
    assert code == 0, output
    assert "copied" in output
    original, copied = (
        AutoTokenizer.from_pretrained(wordpiece_dir),
        AutoTokenizer.from_pretrained(out),
    )
    assert copied("这个手机质量很好")["input_ids"] == original("这个手机质量很好")["input_ids"]
    meta = json.loads((out / META_FILE).read_text())
    assert meta["kind"] == "wordpiece" and meta["copied_from"] == str(wordpiece_dir)

    code, output = run_cli(
        monkeypatch,
        capsys,
        "tokenizer",
        "train",
        "--from",
        str(tmp_path),
        "--out",
        str(tmp_path / "x"),
    )
    assert code == 2
    assert "error:" in output and "Traceback" not in output


def test_cli_train_small(monkeypatch, capsys, tmp_path, corpus_dir):
    out = tmp_path / "cli-bpe"
    code, output = run_cli(
        monkeypatch,
        capsys,
        "tokenizer",
        "train",
        str(corpus_dir),
        "--out",
        str(out),
        "--kind",
        "bpe",
        "--vocab-size",
        "600",
    )
    assert code == 0, output
    assert "held-out" in output
    assert len(AutoTokenizer.from_pretrained(out)) == 600


def test_wordpiece_vocabulary_is_the_same_in_every_process(tmp_path, review_sample):
    """What a transformer classifier with ``init=none`` and no tokenizer folder trains: the
    vocabulary used to change from one process to the next (tokenizers' hash-map order)."""
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps([r["text"] for r in review_sample]), encoding="utf-8")
    script = (
        "import json, sys; from lmforge.tokenizer.train import train_tokenizer; "
        "train_tokenizer(json.load(open(sys.argv[1])), 'wordpiece', 2000, sys.argv[2])"
    )
    files = []
    for run in range(3):
        out = tmp_path / f"tok{run}"
        subprocess.run([sys.executable, "-c", script, str(texts), str(out)], check=True)
        files.append((out / "tokenizer.json").read_text(encoding="utf-8"))
    assert files[0] == files[1] == files[2]
    vocab = json.loads(files[0])["model"]["vocab"]
    assert any(token.startswith("##") for token in vocab)  # the word pieces are in the vocabulary
    added = [t["content"] for t in json.loads(files[0])["added_tokens"]]
    assert added == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # and only the specials added
