"""Quality filters. Each removes documents with a short named reason and stores its scores
in ``doc.meta["scores"]`` so thresholds can be re-tuned from the stats alone.

Step types: ``length``, ``language``, ``script``, ``repetition``, ``symbols``,
``boilerplate``, ``badwords``. See docs/filters.md for thresholds and where they come from.
"""

from __future__ import annotations

from lmforge.corpus.filters.basic import (
    Length,
    LengthConfig,
    Script,
    ScriptConfig,
    Symbols,
    SymbolsConfig,
)
from lmforge.corpus.filters.boilerplate import (
    Badwords,
    BadwordsConfig,
    Boilerplate,
    BoilerplateConfig,
)
from lmforge.corpus.filters.language import Language, LanguageConfig
from lmforge.corpus.filters.repetition import Repetition, RepetitionConfig

STEPS = {
    "length": (LengthConfig, Length),
    "language": (LanguageConfig, Language),
    "script": (ScriptConfig, Script),
    "repetition": (RepetitionConfig, Repetition),
    "symbols": (SymbolsConfig, Symbols),
    "boilerplate": (BoilerplateConfig, Boilerplate),
    "badwords": (BadwordsConfig, Badwords),
}

__all__ = [
    "STEPS",
    "Badwords",
    "BadwordsConfig",
    "Boilerplate",
    "BoilerplateConfig",
    "Language",
    "LanguageConfig",
    "Length",
    "LengthConfig",
    "Repetition",
    "RepetitionConfig",
    "Script",
    "ScriptConfig",
    "Symbols",
    "SymbolsConfig",
]
