"""Request and response bodies. The request models carry the app's limits, so the OpenAPI spec
states them exactly (``maxItems``, ``maximum``) and a violation is a 422 naming the field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lmforge.serve.settings import ServeSettings


class ErrorResponse(BaseModel):
    detail: str = Field(description="what went wrong, in one line")


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    error: str = Field(description="the first problem, as 'field.path: message'")
    detail: list[ValidationErrorItem]


class TextPrediction(BaseModel):
    label: str = Field(description="the most probable label")
    score: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every label's probability")
    truncated: bool = Field(description="the text was cut to max_chars before prediction")


class ClassifyResponse(BaseModel):
    model: str
    version: str
    results: list[TextPrediction] = Field(description="one per text, in request order")


class ModelInfo(BaseModel):
    name: str
    version: str
    kind: str = Field(description="'classifier' or 'causal_lm'")
    model_type: str = ""
    backend: str = ""
    labels: list[str] = []
    size_bytes: int | None = None
    test_metrics: dict[str, float] = {}
    training_label_distribution: dict[str, float] = {}
    training_label_distribution_source: str = ""
    load_seconds: float | None = None
    ready: bool


class VersionInfo(BaseModel):
    version: str
    created: str | None = None
    data_hash: str | None = None
    metrics: dict | None = None
    current: bool = False


class ShadowInfo(BaseModel):
    name: str
    version: str
    scored: int = Field(description="texts the candidate scored so far")
    dropped: int = Field(description="texts not scored: the shadow queue was full")
    errors: int = Field(description="texts on which the candidate raised")
    agreement: float | None = Field(
        description="share of scored texts where candidate and live labels agree"
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    versions: list[VersionInfo] = Field([], description="a registry's versions (else empty)")
    shadow: ShadowInfo | None = Field(
        None, description="the shadow candidate (lmforge serve --shadow), else null"
    )


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(None, max_length=64, description="default: the registry's current")


class HealthResponse(BaseModel):
    status: str


class GenerateResponse(BaseModel):
    model: str
    version: str
    text: str = Field(description="the continuation (without the prompt)")


def classify_request_model(settings: ServeSettings) -> type[BaseModel]:
    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[str] = Field(
            min_length=1,
            max_length=settings.max_texts,
            description=(
                f"1 to {settings.max_texts} texts; each longer than {settings.max_chars} "
                + (
                    "characters is cut and flagged"
                    if settings.on_long_text == "truncate"
                    else "characters is refused with 413"
                )
            ),
            examples=[["质量很好，物流也快", "太差了，再也不买"]],
        )

    return ClassifyRequest


def generate_request_model(settings: ServeSettings) -> type[BaseModel]:
    class GenerateRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prompt: str = Field(max_length=settings.max_chars, examples=["人民日报"])
        max_new_tokens: int = Field(50, ge=1, le=settings.max_new_tokens)
        temperature: float = Field(1.0, ge=0, le=100, description="0: greedy")
        top_k: int = Field(0, ge=0, le=1_000_000, description="0: off")
        top_p: float = Field(1.0, gt=0, le=1)
        repetition_penalty: float = Field(1.0, gt=0, le=100)
        seed: int | None = Field(None, ge=0, le=2**63 - 1)
        stream: bool = Field(False, description="answer as server-sent events, piece by piece")

    return GenerateRequest
