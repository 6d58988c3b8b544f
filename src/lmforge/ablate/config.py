"""The ``ablate:`` section of a recipe."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AblateFinetune(BaseModel, extra="forbid"):
    """Downstream evaluation of every variant's encoder on the recipe's classification split."""

    variants: list[str] | None = Field(
        None,
        description="the variants fine-tuned besides full (default: every trained one); the "
        "others get the held-out measures only. Fine-tuning is the expensive part: name the "
        "variants whose data differs most. Random init is always fine-tuned, for scale.",
    )
    full_data: bool = Field(True, description="fine-tune on the whole train split (one seed)")
    few_shot: int = Field(64, ge=0, description="examples per class for the few-shot runs; 0: off")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    params: dict[str, Any] = Field(
        default_factory=lambda: {"epochs": 2, "lr": 2e-4, "batch_size": 32, "max_len": 128},
        description="transformer parameters for the full-data run",
    )
    few_shot_params: dict[str, Any] = Field(
        default_factory=lambda: {
            "epochs": 20,
            "lr": 2e-4,
            "batch_size": 32,
            "max_len": 128,
            "patience": 20,
        },
        description="transformer parameters for the few-shot runs",
    )


class AblateConfig(BaseModel, extra="forbid"):
    """Which variants to build and how each is trained and measured.

    ``variants``: ``raw``, ``full`` and ``no-<step type>`` (the recipe without that step; for a
    step type the recipe names twice, ``no-<type>#<k>`` removes the k-th, counting from 1).
    Default: raw, full, and one leave-one-out variant per step of the recipe except ``normalize``.
    ``pretrain``: overrides of the recipe's ``pretrain`` section for every variant (give a token or
    step budget: a budget in minutes would make the variants depend on the machine's load).
    ``pretrain_seeds``: replicates of every variant (and of random init).
    """

    variants: list[str] | None = None
    pretrain: dict[str, Any] = Field(default_factory=lambda: {"max_steps": 300})
    finetune: AblateFinetune = Field(default_factory=AblateFinetune)
    pretrain_seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="pretraining seeds (default: the recipe's seed). Each seed is one replicate "
        "of every variant: its own initial weights, data order and masking, and the same seed "
        "for its fine-tuning runs. With two or more, every figure is a mean over replicates and "
        "their spread is the noise a data choice has to beat",
    )
    parallel: int = Field(1, ge=1, description="variants pretrained at once (cores are split)")
