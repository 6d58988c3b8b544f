"""MLM-contextual replacement: our own pretrained encoder proposes words that fit the context.

For a copy, ``n`` content words made of CJK characters are masked together (one mask per
character: the WordPiece vocabulary lmforge trains holds one token per Chinese character), the
encoder scores every masked position in one forward pass (:func:`lmforge.generate.mask_logits`,
the code behind ``lmforge fill-mask``), and each character is drawn from the ``top_k`` most
likely single-CJK-character tokens other than the original one (probabilities renormalised over
those). Words outside the model's length (long texts are cut) keep their characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmforge.augment.words import content_positions, is_cjk_word


@dataclass
class MaskJob:
    """One copy to fill: its tokens, the positions of the masked words, its random generator."""

    tokens: list[str]
    positions: list[int]
    rng: np.random.Generator


class MaskedLMReplacer:
    def __init__(self, model_dir: str | Path, top_k: int = 10, batch_size: int = 32):
        from lmforge.generate import load_masked_lm

        self.model, self.tokenizer = load_masked_lm(model_dir)
        self.top_k = top_k
        self.batch_size = batch_size
        vocab = self.tokenizer.get_vocab()
        allowed = torch.zeros(len(self.tokenizer), dtype=torch.bool)
        for token, idx in vocab.items():
            if idx < allowed.numel() and len(token) == 1 and is_cjk_word(token):
                allowed[idx] = True
        self.allowed = allowed
        self.token_id = {t: i for t, i in vocab.items() if len(t) == 1}

    @staticmethod
    def plan(tokens: list[str], n: int, rng: np.random.Generator) -> list[int] | None:
        """Positions of up to ``n`` CJK content words to mask, or None when there is none."""
        candidates = [i for i in content_positions(tokens) if is_cjk_word(tokens[i])]
        if not candidates:
            return None
        return sorted(rng.choice(candidates, size=min(n, len(candidates)), replace=False).tolist())

    def masked_text(self, job: MaskJob) -> str:
        mask = self.tokenizer.mask_token
        at = set(job.positions)
        return "".join(mask * len(t) if i in at else t for i, t in enumerate(job.tokens))

    def fill(self, jobs: list[MaskJob]) -> list[list[str]]:
        """The tokens of each job with its masked words redrawn."""
        out = []
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            rows = self._logits([self.masked_text(j) for j in batch])
            out.extend(self._draw(job, row) for job, row in zip(batch, rows, strict=True))
        return out

    def _logits(self, texts: list[str]) -> list[torch.Tensor]:
        from lmforge.generate import mask_logits

        return mask_logits(self.model, self.tokenizer, texts)

    def _draw(self, job: MaskJob, logits: torch.Tensor) -> list[str]:
        tokens = list(job.tokens)
        row = 0
        for pos in job.positions:
            chars = list(tokens[pos])
            for k, original in enumerate(chars):
                if row >= logits.shape[0]:  # cut off by the model's length: keep the rest
                    break
                scores = logits[row].masked_fill(~self.allowed, float("-inf"))
                own = self.token_id.get(original)
                if own is not None:
                    scores[own] = float("-inf")
                top = torch.topk(scores, self.top_k)
                probs = torch.softmax(top.values.double(), -1).numpy()
                pick = int(top.indices[int(job.rng.choice(len(probs), p=probs / probs.sum()))])
                chars[k] = self.tokenizer.convert_ids_to_tokens(pick)
                row += 1
            tokens[pos] = "".join(chars)
        return tokens
