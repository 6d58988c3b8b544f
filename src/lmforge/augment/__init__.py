"""Data augmentation for Chinese text: EDA's word operations on jieba words and MLM-contextual
replacement by our own encoder (:mod:`.words`, :mod:`.synonyms`, :mod:`.mlm`), applied to
training texts only, each copy tagged with its origin (:mod:`.core`), over files (:mod:`.files`).
"""

from lmforge.augment.core import (
    ALL_OPS,
    AugmentConfig,
    AugmentedCopy,
    AugmentResult,
    augment_texts,
    augment_train,
    parse_ops,
)

__all__ = [
    "ALL_OPS",
    "AugmentConfig",
    "AugmentResult",
    "AugmentedCopy",
    "augment_texts",
    "augment_train",
    "parse_ops",
]
