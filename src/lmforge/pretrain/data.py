"""Pretraining batches from a tokens folder: MLM (bucketed, masked) and CLM (packed).

Tokens folder contract (written by ``lmforge tokenizer pack``): ``manifest.json`` with
``dtype``, ``vocab_size``, ``tokenizer`` (sub-folder) and ``splits.{train,validation}.shards``;
each shard ``X.npy`` holds documents concatenated without special tokens and ``X.idx.npy``
their start offsets (documents + 1 entries).

Every batch is a pure function of (seed, epoch, batch index), masking included, so a resumed
run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.training.batching import bucketed_batches


@dataclass
class TokenSplit:
    tokens: np.ndarray  # 1-D token ids, documents back to back
    starts: np.ndarray  # int64 document offsets, documents + 1 entries

    @property
    def documents(self) -> int:
        return len(self.starts) - 1


def read_manifest(tokens_dir: str | Path) -> dict:
    path = Path(tokens_dir) / "manifest.json"
    if not path.is_file():
        raise LmforgeError(
            f"{tokens_dir}: not a tokens folder (no manifest.json); run `lmforge tokenizer pack`"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise LmforgeError(f"{path}: invalid JSON ({exc})") from exc


def read_split(tokens_dir: str | Path, split: str) -> TokenSplit:
    """All shards of ``split`` concatenated (memory-mapped reads, one copy in RAM)."""
    root = Path(tokens_dir)
    info = read_manifest(root).get("splits", {}).get(split)
    if not info or not info.get("shards"):
        raise LmforgeError(f"{root}/manifest.json: no {split!r} split")
    tokens, starts, offset = [], [np.zeros(1, np.int64)], 0
    for shard in info["shards"]:
        path = root / shard
        idx_path = path.with_name(path.name.removesuffix(".npy") + ".idx.npy")
        if not path.is_file() or not idx_path.is_file():
            raise LmforgeError(f"{root}: shard {shard} or its .idx.npy is missing")
        toks, idx = np.load(path, mmap_mode="r"), np.load(idx_path).astype(np.int64)
        tokens.append(np.asarray(toks))
        starts.append(idx[1:] + offset)
        offset += len(toks)
    return TokenSplit(np.concatenate(tokens), np.concatenate(starts))


def mask_tokens(
    input_ids: np.ndarray,
    word_ids: np.ndarray,
    rng: np.random.Generator,
    mask_id: int,
    replace_ids: np.ndarray,
    rate: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT masking: pick words with probability ``rate``; their tokens become 80 % [MASK],
    10 % a random non-special token, 10 % unchanged. ``word_ids`` is -1 on special/pad tokens
    (never picked); with one word per token this is plain token masking. Returns (inputs, labels
    with -100 where not picked)."""
    n_words = int(word_ids.max()) + 1 if word_ids.size else 0
    picked_word = rng.random(max(n_words, 1)) < rate
    eligible = word_ids >= 0
    picked = eligible & picked_word[np.where(eligible, word_ids, 0)]
    if not picked.any() and eligible.any():  # at least one target per batch
        picked.flat[np.flatnonzero(eligible)[0]] = True
    labels = np.where(picked, input_ids, -100)
    r = rng.random(input_ids.shape)
    inputs = input_ids.copy()
    inputs[picked & (r < 0.8)] = mask_id
    random_pos = picked & (r >= 0.8) & (r < 0.9)
    inputs[random_pos] = replace_ids[rng.integers(0, len(replace_ids), int(random_pos.sum()))]
    return inputs, labels


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x2FA1F
    )


def whole_word_ids(rows: list[list[str]]) -> list[list[int]]:
    """Word index per token: runs of single Chinese characters are cut into words with jieba,
    '##' pieces continue the previous word, anything else starts a word."""
    import jieba

    out = []
    for tokens in rows:
        ids, word, i = [], -1, 0
        while i < len(tokens):
            if len(tokens[i]) == 1 and _is_cjk(tokens[i]):
                j = i
                while j < len(tokens) and len(tokens[j]) == 1 and _is_cjk(tokens[j]):
                    j += 1
                for piece in jieba.lcut("".join(tokens[i:j]), HMM=False):
                    word += 1
                    ids += [word] * len(piece)
                i = j
                continue
            if not (tokens[i].startswith("##") and word >= 0):
                word += 1
            ids.append(word)
            i += 1
        out.append(ids)
    return out


class MLMData:
    """Each document -> [CLS] tokens [SEP], chunked to ``seq_len``; bucketed batches; masking."""

    def __init__(
        self,
        split: TokenSplit,
        tokenizer,
        seq_len: int,
        whole_word: bool = False,
        rate: float = 0.15,
    ):
        self.split, self.seq_len, self.whole_word, self.rate = split, seq_len, whole_word, rate
        self.cls, self.sep, self.pad, self.mask = (
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
            tokenizer.pad_token_id,
            tokenizer.mask_token_id,
        )
        if None in (self.cls, self.sep, self.pad, self.mask):
            raise LmforgeError(
                "MLM needs a tokenizer with [CLS] [SEP] [PAD] [MASK] tokens (a WordPiece tokenizer)"
            )
        vocab = len(tokenizer)
        self.special_ids = np.asarray(tokenizer.all_special_ids)  # never masked ([UNK] included)
        self.replace_ids = np.setdiff1d(np.arange(vocab), self.special_ids)
        self.id_to_token = (
            np.asarray(tokenizer.convert_ids_to_tokens(list(range(vocab))), dtype=object)
            if whole_word
            else None
        )
        body = seq_len - 2
        doc_len = np.diff(split.starts)
        n_chunks = -(-doc_len // body)  # ceil; empty documents give none
        doc = np.repeat(np.arange(split.documents), n_chunks)
        k = np.arange(len(doc)) - np.repeat(np.cumsum(n_chunks) - n_chunks, n_chunks)
        self.starts = split.starts[doc] + k * body
        self.lengths = np.minimum(body, split.starts[doc + 1] - self.starts) + 2

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def tokens_per_epoch(self) -> int:
        return int(self.lengths.sum())

    def epoch_batches(
        self, batch_size: int, seed: int, epoch: int, shuffle: bool = True
    ) -> list[np.ndarray]:
        rng = np.random.default_rng([seed, epoch]) if shuffle else None
        return bucketed_batches(self.lengths, batch_size, rng)

    def batch(self, ids: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        width = int(self.lengths[ids].max())
        x = np.full((len(ids), width), self.pad, np.int64)
        words = np.full((len(ids), width), -1, np.int64)
        for row, i in enumerate(ids):
            n = int(self.lengths[i])
            x[row, 0], x[row, n - 1] = self.cls, self.sep
            x[row, 1 : n - 1] = self.split.tokens[self.starts[i] : self.starts[i] + n - 2]
        if self.whole_word:
            offset = 0
            for row, w in enumerate(
                whole_word_ids(
                    [
                        list(self.id_to_token[x[r, 1 : self.lengths[i] - 1]])
                        for r, i in enumerate(ids)
                    ]
                )
            ):
                words[row, 1 : len(w) + 1] = np.asarray(w, np.int64) + offset
                offset += (w[-1] + 1) if w else 0
        else:
            body = np.zeros_like(x, bool)
            for row, i in enumerate(ids):
                body[row, 1 : self.lengths[i] - 1] = True
            words[body] = np.arange(int(body.sum()))
        words[np.isin(x, self.special_ids)] = -1
        inputs, labels = mask_tokens(x, words, rng, self.mask, self.replace_ids, self.rate)
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(np.arange(width) < self.lengths[ids, None]).long(),
            "labels": torch.from_numpy(labels),
        }


class CLMData:
    """Documents joined with EOS, cut into fixed ``seq_len`` rows (the remainder is dropped)."""

    def __init__(self, split: TokenSplit, tokenizer, seq_len: int):
        eos = tokenizer.eos_token_id
        if eos is None:
            raise LmforgeError(
                "CLM needs a tokenizer with an end-of-text token (e.g. <|endoftext|>)"
            )
        stream = np.insert(split.tokens.astype(np.int64), split.starts[1:], eos)
        n = len(stream) // seq_len
        if n == 0:
            raise LmforgeError(f"only {len(stream)} tokens: fewer than one sequence of {seq_len}")
        self.rows = stream[: n * seq_len].reshape(n, seq_len)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def tokens_per_epoch(self) -> int:
        return int(self.rows.size)

    def epoch_batches(
        self, batch_size: int, seed: int, epoch: int, shuffle: bool = True
    ) -> list[np.ndarray]:
        order = (
            np.random.default_rng([seed, epoch]).permutation(len(self.rows))
            if shuffle
            else np.arange(len(self.rows))
        )
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def batch(self, ids: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(self.rows[ids])
        return {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x}
