"""Corpus ablations: what each data step did to the model.

``lmforge ablate RECIPE`` builds corpus variants from the same raw sources (``raw``: read and
normalize only; ``full``: the recipe; ``no-<step>``: the recipe without one step), pretrains the
same model with the same token budget and seed on each, and compares them on the same clean
held-out text and on the same downstream classification split (full data, and N examples per
class over several seeds). FineWeb's and DataComp-LM's ablations are the model: one data choice
changed, everything else fixed, the downstream score compared.
"""

from lmforge.ablate.config import AblateConfig
from lmforge.ablate.runner import run_ablation

__all__ = ["AblateConfig", "run_ablation"]
