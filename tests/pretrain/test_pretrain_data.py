"""Masking statistics, whole-word masking, length buckets and CLM packing on real text."""

from __future__ import annotations

import numpy as np
from transformers import AutoTokenizer

from lmforge.pretrain.data import (
    CLMData,
    MLMData,
    TokenSplit,
    read_split,
    whole_word_ids,
)


def _mlm(tokens_dir, seq_len=64, whole_word=False):
    tok = AutoTokenizer.from_pretrained(tokens_dir / "tokenizer")
    return MLMData(read_split(tokens_dir, "train"), tok, seq_len, whole_word), tok


def test_sequences_cover_every_token_once_with_cls_and_sep(mlm_tokens):
    data, tok = _mlm(mlm_tokens, seq_len=32)
    assert data.lengths.max() <= 32 and data.lengths.min() >= 3
    assert int((data.lengths - 2).sum()) == len(data.split.tokens)  # chunks tile the documents
    b = data.batch(np.arange(8), np.random.default_rng(0))
    x = b["input_ids"].numpy()
    assert (x[:, 0] == tok.cls_token_id).all()
    lengths = b["attention_mask"].sum(1).numpy()
    assert (x[np.arange(8), lengths - 1] == tok.sep_token_id).all()


def test_masking_rate_and_80_10_10(mlm_tokens):
    data, tok = _mlm(mlm_tokens)
    special = list(tok.all_special_ids)
    picked = masked = kept = n_body = 0
    for i, ids in enumerate(data.epoch_batches(32, seed=0, epoch=0)[:40]):
        b = data.batch(ids, np.random.default_rng(i))
        x, y = b["input_ids"].numpy(), b["labels"].numpy()
        sel = y != -100
        original = np.where(sel, y, x)
        body = b["attention_mask"].numpy().astype(bool) & ~np.isin(original, special)
        assert (sel <= body).all(), "a pad or special position was picked"
        picked, n_body = picked + sel.sum(), n_body + body.sum()
        masked += (x[sel] == tok.mask_token_id).sum()
        kept += (x[sel] == y[sel]).sum()
    assert abs(picked / n_body - 0.15) < 0.01
    assert abs(masked / picked - 0.8) < 0.02
    assert abs(kept / picked - 0.1) < 0.02  # (+ the rare random draw of the same token)


def test_whole_word_masking_masks_whole_jieba_words(mlm_tokens):
    assert whole_word_ids([["hello", "##world", "x"]]) == [[0, 0, 1]]
    words = whole_word_ids([list("这个手机质量很好")])[0]
    assert len(words) == 8 and len(set(words)) < 8  # jieba joins characters into words
    data, tok = _mlm(mlm_tokens, whole_word=True)
    partial = whole = 0
    for i, ids in enumerate(data.epoch_batches(16, seed=0, epoch=0)[:10]):
        b = data.batch(ids, np.random.default_rng(i))
        x, y = b["input_ids"].numpy(), b["labels"].numpy()
        for r in range(len(ids)):
            n = int(b["attention_mask"][r].sum())
            original = np.where(y[r] != -100, y[r], x[r])[1 : n - 1]
            w = np.asarray(whole_word_ids([tok.convert_ids_to_tokens(original.tolist())])[0])
            for word in np.unique(w):
                sel = y[r, 1 : n - 1][w == word] != -100
                partial += bool(sel.any() and not sel.all())
                whole += bool(sel.all() and len(sel) > 1)
    assert partial == 0 and whole > 0


def test_buckets_are_deterministic_and_cut_padding(mlm_tokens):
    data, _ = _mlm(mlm_tokens)
    a, b = data.epoch_batches(16, 3, 1), data.epoch_batches(16, 3, 1)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert sorted(np.concatenate(a).tolist()) == list(range(len(data)))
    pad = sum(data.lengths[i].max() * len(i) - data.lengths[i].sum() for i in a)
    rng = np.random.default_rng(0)
    random = [rng.permutation(len(data))[j : j + 16] for j in range(0, len(data), 16)]
    pad_random = sum(data.lengths[i].max() * len(i) - data.lengths[i].sum() for i in random)
    assert pad < 0.5 * pad_random
    assert not all((x == y).all() for x, y in zip(a, data.epoch_batches(16, 3, 2), strict=False))


def test_clm_packing_joins_documents_with_eos(clm_tokens):
    tok = AutoTokenizer.from_pretrained(clm_tokens / "tokenizer")
    split = TokenSplit(np.array([7, 8, 9, 10, 11, 12, 13], np.uint16), np.array([0, 3, 3, 7]))
    data = CLMData(split, tok, seq_len=4)
    eos = tok.eos_token_id
    assert data.rows.tolist() == [
        [7, 8, 9, eos],
        [eos, 10, 11, 12],
    ]  # the empty document adds one EOS
    real = CLMData(read_split(clm_tokens, "train"), tok, seq_len=64)
    assert real.rows.shape[1] == 64 and (real.rows == eos).sum() > 10
    b = real.batch(real.epoch_batches(4, 0, 0)[0], np.random.default_rng(0))
    assert (b["labels"] == b["input_ids"]).all() and b["input_ids"].shape == (4, 64)
