"""FLOPs per training token (for MFU); the matmul peaks and dtype choice live in
:mod:`lmforge.training.device`."""

from __future__ import annotations


def train_flops_per_token(config, objective: str, seq_len: int, mask_rate: float = 0.15) -> float:
    """Matmul FLOPs of one training token (forward + backward = 3x forward).

    6 x (weights of the transformer blocks) + 12 x layers x width x seq (attention scores and
    values) + the output head: for MLM only on the masked fraction (we compute it there only).
    """
    h, L, V = config.hidden_size, config.num_hidden_layers, config.vocab_size
    f = config.intermediate_size
    if objective == "rtd":  # discriminator on every token + a 1/4-width generator (~1/16 FLOPs)
        block = (4 * h * h + 2 * h * f) * (1 + 1 / 16)
        head = h * h + (h * h / 4 + h * V) * mask_rate
    elif objective == "mlm":
        block = 4 * h * h + 2 * h * f
        head = (h * h + h * V) * mask_rate
    else:
        block = 4 * h * h + 3 * h * f
        head = h * V
    return 6 * (L * block + head) + 12 * L * h * seq_len
