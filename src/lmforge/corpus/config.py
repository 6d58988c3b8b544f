"""The ``corpus:`` section of a recipe: sources, steps in order, output, execution."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from lmforge.corpus.registry import step_list_adapter
from lmforge.corpus.sources import SourceConfig

# The default chain, in order. Every entry uses its step's recommended defaults.
DEFAULT_STEPS: list[dict[str, Any]] = [
    {"type": "normalize"},
    {"type": "length"},
    {"type": "script"},
    {"type": "language"},
    {"type": "boilerplate"},
    {"type": "symbols"},
    {"type": "repetition"},
    {"type": "badwords"},
    {"type": "pii"},
    {"type": "exact_dedup"},
    {"type": "minhash_dedup"},
]


class OutputConfig(BaseModel, extra="forbid"):
    """How kept documents are written: Parquet (zstd) and/or JSONL shards, one per rank."""

    path: str | None = Field(
        None,
        description="where `lmforge corpus build RECIPE` writes the corpus: a folder or any "
        "fsspec URL (s3://bucket/prefix, ...); default runs/<name>/corpus. Not part of the "
        "config hash",
    )
    formats: list[Literal["parquet", "jsonl"]] = Field(default_factory=lambda: ["parquet"])
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    keep_removed_text: int = Field(
        200, ge=0, description="characters of each removed document kept in the removed log"
    )


class LocalExecutorConfig(BaseModel, extra="forbid"):
    """A process pool on this machine (``workers`` processes)."""

    type: Literal["local"] = "local"


class RayExecutorConfig(BaseModel, extra="forbid"):
    """Ranks as Ray tasks on a cluster whose nodes all see the output folder (docs/distributed.md)."""

    type: Literal["ray"] = "ray"
    address: str = Field(
        "auto",
        description="auto (the cluster `ray start` runs here, or RAY_ADDRESS), "
        "local (start a private Ray on this machine), host:port or ray://host:10001",
    )
    cpus_per_task: float = Field(1, gt=0, description="CPUs Ray reserves for one rank")
    max_in_flight: int | None = Field(
        None, ge=1, description="ranks submitted at once; default 2 x the tasks the cluster fits"
    )
    max_retries: int = Field(3, ge=0, description="reruns of a rank whose worker or node died")


ExecutorConfig = Annotated[LocalExecutorConfig | RayExecutorConfig, Field(discriminator="type")]


class CorpusConfig(BaseModel, extra="forbid"):
    """Everything the corpus builder needs. Same config + same inputs → same output bytes."""

    sources: list[SourceConfig] = Field(min_length=1)
    steps: list[Any] = Field(
        default_factory=lambda: [dict(s) for s in DEFAULT_STEPS], validate_default=True
    )
    output: OutputConfig = Field(default_factory=OutputConfig)
    workers: int | None = Field(None, ge=1, description="processes; default = all cores")
    batch_size: int = Field(2048, ge=1, description="documents per batch inside a rank")
    executor: ExecutorConfig = Field(
        default_factory=LocalExecutorConfig, description="where ranks run; not part of the output"
    )

    @field_validator("steps", mode="after")
    @classmethod
    def _validate_steps(cls, steps: list[Any]) -> list[Any]:
        return step_list_adapter().validate_python(steps)
