"""Self-supervised pretraining (MLM and CLM): data, objectives, the loop, checkpoints."""

from lmforge.pretrain.loop import pretrain

__all__ = ["pretrain"]
