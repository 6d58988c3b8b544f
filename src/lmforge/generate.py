"""Text generation from a causal LM, streamed token by token, and fill-mask for an MLM.

Our own sampling loop over the model's KV cache rather than ``model.generate`` +
``TextIteratorStreamer``: it runs in the caller's thread (no streamer thread and queue), one
``torch.Generator`` makes every draw reproducible from ``seed``, and the whole decoding rule
(repetition penalty -> temperature -> top-k -> top-p -> sample) reads in a dozen lines.
It works with any local HF causal-LM folder whose forward takes ``past_key_values``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import torch

from lmforge.errors import LmforgeError


def _folder(model_dir: str | Path) -> Path:
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise LmforgeError(f"{path}: not a model folder (no config.json)")
    return path


def load_causal_lm(model_dir: str | Path):
    """(model in eval mode, tokenizer) from a local folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = _folder(model_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)  # never a pickle
    except ValueError as exc:
        raise LmforgeError(
            f"{path}: not a causal language model ({exc.__class__.__name__})"
        ) from exc
    return model.eval(), AutoTokenizer.from_pretrained(path)


def next_token_distribution(
    logits: torch.Tensor,
    previous: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
) -> torch.Tensor:
    """Probabilities over the vocabulary for one position (1-D ``logits``).

    Repetition penalty (CTRL): logits of tokens already in ``previous`` are divided by the
    penalty when positive, multiplied when negative. Then temperature, then top-k (keep the k
    largest), then top-p (keep the smallest set whose probability reaches p).
    """
    logits = logits.float().clone()
    if repetition_penalty != 1.0 and previous.numel():
        seen = logits[previous]
        logits[previous] = torch.where(
            seen > 0, seen / repetition_penalty, seen * repetition_penalty
        )
    logits = logits / max(temperature, 1e-6)
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    probs = torch.softmax(logits, -1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        drop = (
            sorted_p.cumsum(-1) - sorted_p >= top_p
        )  # the mass before this token already reached p
        probs[order[drop]] = 0.0
        probs = probs / probs.sum()
    return probs


@torch.no_grad()
def generate_ids(
    model,
    input_ids: list[int],
    max_new_tokens: int = 50,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
    eos_token_id: int | None = None,
) -> Iterator[int]:
    """Yield new token ids one at a time, reusing the KV cache. ``temperature == 0`` is greedy."""
    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    greedy = greedy or temperature <= 0
    ids = torch.tensor([input_ids], dtype=torch.long, device=model.device)
    # transformers 5 names the KV cache argument ``cache``; 4.x called it ``past_key_values``.
    cache_arg = (
        "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    )
    past, step_input = None, ids
    limit = getattr(model.config, "max_position_embeddings", None)
    for _ in range(max_new_tokens):
        if limit is not None and ids.size(1) >= limit:
            return
        out = model(input_ids=step_input, use_cache=True, **{cache_arg: past})
        past, logits = out.get(cache_arg), out.logits[0, -1]
        if greedy:
            if repetition_penalty != 1.0:
                logits = next_token_distribution(
                    logits, ids[0], repetition_penalty=repetition_penalty
                )
            token = int(logits.argmax())
        else:
            probs = next_token_distribution(
                logits, ids[0], temperature, top_k, top_p, repetition_penalty
            )
            token = int(torch.multinomial(probs.cpu(), 1, generator=gen))
        yield token
        if eos_token_id is not None and token == eos_token_id:
            return
        step_input = torch.tensor([[token]], device=model.device)
        ids = torch.cat([ids, step_input], 1)


def stream_text(
    model, tokenizer, prompt: str, max_new_tokens: int = 50, **sampling
) -> Iterator[str]:
    """Yield decoded text pieces as tokens arrive (a piece is held back while it ends in an
    incomplete UTF-8 sequence, as byte-level BPE splits one character over several tokens)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if not prompt_ids:
        prompt_ids = [
            tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ]
    new, shown = [], ""
    for token in generate_ids(
        model, prompt_ids, max_new_tokens, eos_token_id=tokenizer.eos_token_id, **sampling
    ):
        new.append(token)
        text = tokenizer.decode(new, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue
        if len(text) > len(shown):
            yield text[len(shown) :]
        shown = text


def generate(model_dir: str | Path, prompt: str, max_new_tokens: int = 50, **sampling) -> str:
    """Load ``model_dir`` and return ``prompt``'s continuation (the non-streaming form)."""
    model, tokenizer = load_causal_lm(model_dir)
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, **sampling))


def load_masked_lm(model_dir: str | Path):
    """(masked LM in eval mode, tokenizer) from a local folder."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = _folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    try:
        model = AutoModelForMaskedLM.from_pretrained(path)
    except ValueError as exc:
        raise LmforgeError(
            f"{path}: not a masked language model ({exc.__class__.__name__})"
        ) from exc
    if tokenizer.mask_token is None:
        raise LmforgeError(f"{path}: the tokenizer has no mask token")
    return model.eval(), tokenizer


@torch.no_grad()
def mask_logits(model, tokenizer, texts: list[str]) -> list[torch.Tensor]:
    """For each text, the logits (masks x vocabulary) at its mask tokens, in order; one padded
    batch; texts longer than the model's positions are cut, and their later masks are missing."""
    limit = getattr(model.config, "max_position_embeddings", None) or 512
    enc = tokenizer(
        texts, return_tensors="pt", padding=True, truncation=True, max_length=min(limit, 512)
    )
    logits = model(**enc).logits
    masks = enc["input_ids"] == tokenizer.mask_token_id
    return [logits[i][masks[i]].float() for i in range(len(texts))]


def fill_mask(model_dir: str | Path, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each mask token in ``text``: the ``top_k`` (token, probability) fillers."""
    model, tokenizer = load_masked_lm(model_dir)
    if tokenizer.mask_token not in text:
        raise LmforgeError(f"the text has no {tokenizer.mask_token} token to fill")
    out = []
    for row in mask_logits(model, tokenizer, [text])[0]:
        top = torch.topk(torch.softmax(row, -1), top_k)
        out.append(
            [
                (tokenizer.convert_ids_to_tokens(int(i)), float(p))
                for p, i in zip(top.values, top.indices, strict=True)
            ]
        )
    return out
