"""A recipe: one YAML file that describes a whole run, validated by pydantic.

``lmforge run`` executes the stages a recipe describes, in order; each later issue
adds a section. A bad recipe is reported as one line naming the key and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from lmforge.collect.config import CollectConfig
from lmforge.corpus.config import CorpusConfig
from lmforge.errors import LmforgeError
from lmforge.stages import (
    ClassifyStage,
    CompressStage,
    PackStage,
    PretrainStage,
    TokenizerStage,
)

DEFAULT_RECIPE = Path(__file__).parent / "recipes" / "default.yaml"


class Recipe(BaseModel, extra="forbid"):
    name: str = Field("default", pattern=r"^[A-Za-z0-9._-]+$", description="run folder name")
    seed: int = 0
    runs_dir: str = "runs"
    collect: CollectConfig | None = None  # lmforge collect; a pass before the corpus
    corpus: CorpusConfig
    tokenizer: TokenizerStage | None = None
    pack: PackStage | None = None
    pretrain: PretrainStage | None = None
    classify: ClassifyStage | None = None
    compress: CompressStage | None = None

    @model_validator(mode="after")
    def _compress_needs_classify(self) -> Recipe:
        if self.compress is not None and (self.classify is None or not self.classify.transformer):
            raise ValueError("compress needs a classify section with transformer: true")
        return self

    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def describe_validation_error(error: ValidationError, where: str) -> str:
    """First problem of a pydantic error as one line: ``where: a.b.2.c: message``."""
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {loc}: {first['msg']}{suffix}"


def load_recipe(path: str | Path | None = None) -> Recipe:
    """Read and validate a recipe file; ``None`` means the packaged default."""
    path = Path(path) if path is not None else DEFAULT_RECIPE
    if not path.is_file():
        raise LmforgeError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LmforgeError(f"{path}{line}: invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise LmforgeError(f"{path}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise LmforgeError(
            f"{path}: a recipe is a YAML mapping (key: value), got {type(data).__name__}"
        )
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise LmforgeError(describe_validation_error(exc, str(path))) from None
