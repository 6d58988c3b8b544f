"""Tokens folders in the pack contract, built from real built-in text at tiny scale."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from lmforge.tokenizer.train import train_tokenizer


def write_tokens_folder(
    texts: list[str], kind: str, vocab_size: int, out: Path, val_every: int = 10
) -> Path:
    """Train a tokenizer, encode every text without specials, write train/validation shards."""
    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(texts, kind, vocab_size, out / "tokenizer")
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    encoded = tok(texts, add_special_tokens=False)["input_ids"]
    splits = {"train": [], "validation": []}
    for i, ids in enumerate(encoded):
        splits["validation" if i % val_every == 0 else "train"].append(ids)
    manifest = {"dtype": "uint16", "vocab_size": len(tok), "tokenizer": "tokenizer", "splits": {}}
    for name, docs in splits.items():
        flat = np.asarray([t for d in docs for t in d], np.uint16)
        starts = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
        np.save(out / f"{name}-00000.npy", flat)
        np.save(out / f"{name}-00000.idx.npy", starts)
        manifest["splits"][name] = {
            "shards": [f"{name}-00000.npy"],
            "tokens": int(flat.size),
            "documents": len(docs),
        }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="session")
def texts(review_sample, news_sample) -> list[str]:
    return [r["text"] for r in review_sample] + news_sample


@pytest.fixture(scope="session")
def mlm_tokens(tmp_path_factory, texts) -> Path:
    return write_tokens_folder(texts, "wordpiece", 1500, tmp_path_factory.mktemp("mlm") / "tokens")


@pytest.fixture(scope="session")
def clm_tokens(tmp_path_factory, texts) -> Path:
    return write_tokens_folder(texts, "bpe", 600, tmp_path_factory.mktemp("clm") / "tokens")
