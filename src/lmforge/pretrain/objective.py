"""Training objectives as modules (so DDP wraps the whole computation, head included).

``MaskedLM`` runs the encoder, gathers the hidden states at masked positions only and applies
the model's own prediction head to them: ~15 % of the head's work, same weights, so the model
still saves and loads as a standard ``BertForMaskedLM``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class MaskedLM(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # BertForMaskedLM: .cls; RoBERTa-like: .lm_head; anything else: full logits.
        self.head = model.cls if hasattr(model, "cls") else getattr(model, "lm_head", None)

    def forward(self, input_ids, attention_mask, labels):
        targets = labels != -100
        if self.head is None:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits[targets]
        else:
            base = getattr(self.model, self.model.base_model_prefix)
            hidden = base(input_ids=input_ids, attention_mask=attention_mask)[0]
            flat = targets.flatten().nonzero().squeeze(1)  # index_select: a cheap backward
            logits = self.head(hidden.flatten(0, 1).index_select(0, flat))
        gold = labels[targets]
        loss = F.cross_entropy(logits.float(), gold)
        correct = (logits.argmax(-1) == gold).sum()
        return loss, gold.numel(), correct


class CausalLM(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
        gold = labels[:, 1:]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), gold.reshape(-1))
        correct = (logits.argmax(-1) == gold).sum()
        return loss, gold.numel(), correct


def objective_module(objective: str, model: nn.Module) -> nn.Module:
    if objective == "rtd":
        from lmforge.pretrain.rtd import ReplacedTokenDetection

        return ReplacedTokenDetection(model)
    return MaskedLM(model) if objective == "mlm" else CausalLM(model)
