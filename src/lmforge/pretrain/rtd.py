"""Replaced-token detection (ELECTRA, Clark et al. 2020): a loss on every token, not 15 %.

A small generator (a masked LM, 1/4 of the discriminator's width, same depth) fills the masked
positions with its own samples; the discriminator reads the corrupted text and says, for every
token, whether it was replaced. Both train jointly:
``loss = generator MLM loss + disc_weight × discriminator BCE`` (ELECTRA's weight: 50). They share
the token, position and type embeddings (the generator projects them to its own width).

Only the discriminator is the model: ``ElectraForPreTraining``, saved as a ``save_pretrained``
folder that ``AutoModelForSequenceClassification`` loads (``ElectraForSequenceClassification``),
so ``lmforge classify train --model transformer -p init=DIR`` fine-tunes it like a BERT folder.
The generator lives in the checkpoint only (resume continues it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GENERATOR_FRACTION = 4  # generator width = discriminator width / 4 (ELECTRA: 1/4 to 1/2 works best)
DISC_WEIGHT = 50.0


def generator_config(disc_config, fraction: int = GENERATOR_FRACTION):
    """The generator's ElectraConfig: same depth, 1/fraction of the width and heads, the
    discriminator's embedding size (so the embeddings can be shared)."""
    from transformers import ElectraConfig

    hidden = max(16, disc_config.hidden_size // fraction)
    heads = max(1, disc_config.num_attention_heads // fraction)
    return ElectraConfig(
        vocab_size=disc_config.vocab_size,
        embedding_size=disc_config.embedding_size,
        hidden_size=hidden,
        num_hidden_layers=disc_config.num_hidden_layers,
        num_attention_heads=heads,
        intermediate_size=max(16, disc_config.intermediate_size // fraction),
        max_position_embeddings=disc_config.max_position_embeddings,
        pad_token_id=disc_config.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


class ReplacedTokenDetection(nn.Module):
    """``forward(input_ids, attention_mask, labels)`` on an MLM batch -> (loss, tokens, correct),
    where *correct* counts the discriminator's right calls over all real tokens."""

    def __init__(
        self,
        discriminator: nn.Module,
        generator: nn.Module | None = None,
        disc_weight: float = DISC_WEIGHT,
        generator_fraction: int = GENERATOR_FRACTION,
        temperature: float = 1.0,
    ):
        super().__init__()
        from transformers import ElectraForMaskedLM

        self.model = discriminator
        if generator is None:
            generator = ElectraForMaskedLM._from_config(
                generator_config(discriminator.config, generator_fraction),
                attn_implementation="sdpa",
            )
        self.generator = generator
        shared, own = discriminator.electra.embeddings, generator.electra.embeddings
        own.word_embeddings = shared.word_embeddings
        own.position_embeddings = shared.position_embeddings
        own.token_type_embeddings = shared.token_type_embeddings
        generator.generator_lm_head.weight = shared.word_embeddings.weight  # tied output layer
        self.disc_weight, self.temperature = disc_weight, temperature

    def forward(self, input_ids, attention_mask, labels):
        masked = labels != -100
        hidden = self.generator.electra(input_ids=input_ids, attention_mask=attention_mask)[0]
        flat = masked.flatten().nonzero().squeeze(1)  # the head only where it is needed
        head_in = self.generator.generator_predictions(hidden.flatten(0, 1).index_select(0, flat))
        logits = self.generator.generator_lm_head(head_in).float()
        gold = labels[masked]
        generator_loss = F.cross_entropy(logits, gold)

        with torch.no_grad():  # sample replacements (ELECTRA: no gradient through the sampling)
            sampled = torch.multinomial(torch.softmax(logits / self.temperature, -1), 1).squeeze(1)
            corrupted = input_ids.clone()
            corrupted[masked] = sampled
            original = torch.where(masked, labels, input_ids)
            replaced = (corrupted != original).float()
        scores = self.model(input_ids=corrupted, attention_mask=attention_mask).logits.float()
        real = attention_mask.bool()
        disc_loss = F.binary_cross_entropy_with_logits(scores[real], replaced[real])
        correct = ((scores[real] > 0).float() == replaced[real]).sum()
        return generator_loss + self.disc_weight * disc_loss, int(real.sum()), correct
