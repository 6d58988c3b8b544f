"""Size presets for the two pretrained model families, as plain transformers classes.

- ``mlm``: a BERT-style encoder (``BertConfig`` -> ``BertForMaskedLM``), no pooler.
- ``clm``: a Llama-style decoder (``LlamaConfig`` -> ``LlamaForCausalLM``), tied embeddings.
- ``rtd``: an ELECTRA discriminator of the encoder's size (``ElectraConfig`` ->
  ``ElectraForPreTraining``); its generator is built by :mod:`lmforge.pretrain.rtd`.

No dropout (as in Llama and budget BERT recipes such as "Cramming"): a short pretraining run
over a small corpus is not in the overfitting regime, and on CPU dropout's random masks cost
~30 % of a step and keep SDPA off its fused kernel. Fine-tuning can set it back with
``from_pretrained(DIR, hidden_dropout_prob=0.1)``.

Parameter counts come from a closed formula (:func:`param_count`), so listing the presets
(``lmforge pretrain --help``) never instantiates a model. A test checks the formula
against real instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmforge.errors import LmforgeError

OBJECTIVES = ("mlm", "clm", "rtd")


@dataclass(frozen=True)
class Preset:
    layers: int
    hidden: int
    heads: int
    encoder_ffn: int  # BERT intermediate size (GELU MLP, 4x)
    decoder_ffn: int  # Llama intermediate size (SwiGLU, ~8/3 x, multiple of 64)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(layers=4, hidden=256, heads=4, encoder_ffn=1024, decoder_ffn=704),
    "mini": Preset(layers=6, hidden=384, heads=6, encoder_ffn=1536, decoder_ffn=1024),
    "small": Preset(layers=8, hidden=512, heads=8, encoder_ffn=2048, decoder_ffn=1408),
}


def _check(objective: str, preset: str) -> Preset:
    if objective not in OBJECTIVES:
        raise LmforgeError(
            f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}"
        )
    if preset not in PRESETS:
        raise LmforgeError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def param_count(objective: str, preset: str, vocab_size: int, max_len: int = 128) -> int:
    """Exact number of parameters of :func:`build_model` (tied embeddings counted once)."""
    p = _check(objective, preset)
    h, f, L, V = p.hidden, p.encoder_ffn, p.layers, vocab_size
    if objective in ("mlm", "rtd"):
        embeddings = V * h + max_len * h + 2 * h + 2 * h  # word, position, token type, LayerNorm
        layer = 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
        if objective == "rtd":  # discriminator head: dense h->h, then h->1
            return embeddings + L * layer + (h * h + h) + (h + 1)
        head = (h * h + h) + 2 * h + V  # transform + LayerNorm + decoder bias (weight tied)
        return embeddings + L * layer + head
    f = p.decoder_ffn
    layer = 4 * h * h + 3 * h * f + 2 * h  # q k v o, gate up down, two RMSNorms
    return V * h + L * layer + h


def preset_table(vocab_size: int = 5000, max_len: int = 128) -> str:
    """One line per preset, e.g. for ``--help``: 'tiny (4x256): mlm 4.5M, clm 3.6M'."""
    rows = []
    for name, p in PRESETS.items():
        mlm = param_count("mlm", name, vocab_size, max_len) / 1e6
        clm = param_count("clm", name, vocab_size, max_len) / 1e6
        rows.append(f"{name} ({p.layers}x{p.hidden}): mlm {mlm:.1f}M, clm {clm:.1f}M")
    return "; ".join(rows) + f" (vocab {vocab_size}, length {max_len})"


def build_config(
    objective: str,
    preset: str,
    vocab_size: int,
    max_len: int = 128,
    pad_token_id: int = 0,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
):
    """A transformers config for ``preset`` (SDPA attention)."""
    p = _check(objective, preset)
    if objective in ("mlm", "rtd"):
        from transformers import BertConfig, ElectraConfig

        encoder = {
            "vocab_size": vocab_size,
            "hidden_size": p.hidden,
            "num_hidden_layers": p.layers,
            "num_attention_heads": p.heads,
            "intermediate_size": p.encoder_ffn,
            "max_position_embeddings": max_len,
            "pad_token_id": pad_token_id,
            "hidden_dropout_prob": 0.0,  # see the module docstring
            "attention_probs_dropout_prob": 0.0,
        }
        if objective == "rtd":  # ELECTRA's discriminator: embeddings as wide as the encoder
            return ElectraConfig(embedding_size=p.hidden, **encoder)
        return BertConfig(**encoder)
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=p.hidden,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.heads,
        intermediate_size=p.decoder_ffn,
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


def build_model(objective: str, preset: str, vocab_size: int, max_len: int = 128, **token_ids):
    """A freshly initialised ``BertForMaskedLM`` (mlm), ``ElectraForPreTraining`` (rtd: the
    discriminator) or ``LlamaForCausalLM`` (clm)."""
    config = build_config(objective, preset, vocab_size, max_len, **token_ids)
    if objective == "rtd":
        from transformers import ElectraForPreTraining

        return ElectraForPreTraining._from_config(config, attn_implementation="sdpa")
    if objective == "mlm":
        from transformers import BertForMaskedLM

        return BertForMaskedLM._from_config(config, attn_implementation="sdpa")
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")


def load_model(objective: str, model_dir: str | Path):
    """A local HF model folder (to continue pretraining it), with SDPA attention where supported."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise LmforgeError(f"--init {path}: not a model folder (no config.json)")
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, ElectraForPreTraining

    auto = {"mlm": AutoModelForMaskedLM, "rtd": ElectraForPreTraining}.get(
        objective, AutoModelForCausalLM
    )
    try:
        return auto.from_pretrained(path, attn_implementation="sdpa")
    except (ValueError, ImportError):
        return auto.from_pretrained(path)
