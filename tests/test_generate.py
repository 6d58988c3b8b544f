"""Sampling: determinism with a seed, greedy == temperature -> 0, top-k / top-p supports, KV cache."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.generate import generate_ids, load_causal_lm, next_token_distribution, stream_text


@pytest.fixture(scope="module")
def lm_dir(tiny_clm_dir):
    return tiny_clm_dir


def _run(lm_dir, n=12, **kw):
    model, tok = load_causal_lm(lm_dir)
    return list(
        generate_ids(model, tok("人民日报", add_special_tokens=False)["input_ids"], n, **kw)
    )


def test_seed_makes_sampling_reproducible(lm_dir):
    assert _run(lm_dir, seed=3) == _run(lm_dir, seed=3)
    assert _run(lm_dir, seed=3) != _run(lm_dir, seed=4)


def test_greedy_equals_temperature_to_zero_and_the_uncached_argmax(lm_dir):
    greedy = _run(lm_dir, greedy=True)
    assert greedy == _run(lm_dir, temperature=1e-5, seed=0) == _run(lm_dir, temperature=0)
    model, tok = load_causal_lm(lm_dir)
    ids = tok("人民日报", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert ids[-12:] == greedy


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0, -1.0])
    none = torch.tensor([], dtype=torch.long)
    assert (next_token_distribution(logits, none, top_k=2) > 0).sum() == 2
    probs = torch.softmax(logits, -1)  # 0.64, 0.23, 0.09, ...
    p = next_token_distribution(logits, none, top_p=0.8)
    assert (p > 0).tolist() == [True, True, False, False, False, False]
    assert torch.allclose(p[:2], probs[:2] / probs[:2].sum())
    assert (next_token_distribution(logits, none, top_p=0.5) > 0).sum() == 1
    penalized = next_token_distribution(logits, torch.tensor([0]), repetition_penalty=2.0)
    assert penalized[0] < probs[0]


def test_sampling_stays_in_top_k(lm_dir):
    model, tok = load_causal_lm(lm_dir)
    ids = tok("人民日报", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        allowed = set(torch.topk(model(torch.tensor([ids])).logits[0, -1], 3).indices.tolist())
    firsts = {next(generate_ids(model, ids, 1, top_k=3, seed=s)) for s in range(20)}
    assert firsts <= allowed


def test_stream_and_cli(lm_dir):
    model, tok = load_causal_lm(lm_dir)
    pieces = list(stream_text(model, tok, "人民", 8, seed=1))
    assert all(isinstance(p, str) for p in pieces)
    result = CliRunner().invoke(
        app, ["generate", str(lm_dir), "--prompt", "人民", "--max-new-tokens", "5", "--seed", "1"]
    )
    assert result.exit_code == 0 and result.output.startswith("人民")
