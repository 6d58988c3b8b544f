"""What every torch trainer shares: device and dtype, batching, optimizers and schedules,
early stopping, checkpoints, and one ``fit`` loop.

Callers: the neural baselines and transformer fine-tuning (:mod:`lmforge.classify`),
distillation and pruning recovery (:mod:`lmforge.compress`) train through :func:`fit` with their
own loss; the pretraining loop (:mod:`lmforge.pretrain.loop`) steps on a token budget instead
of epochs, with the same device, optimizer, schedule and checkpoint pieces.
"""

from lmforge.training.batching import Batch, bucketed_batches, pad_batch, padded_length
from lmforge.training.device import autocast, choose_dtype, resolve_device
from lmforge.training.early_stopping import EarlyStopping
from lmforge.training.loop import FitResult, fit, record_fits
from lmforge.training.optim import Schedule, adamw, param_groups, set_lr

__all__ = [
    "Batch",
    "EarlyStopping",
    "FitResult",
    "Schedule",
    "adamw",
    "autocast",
    "bucketed_batches",
    "choose_dtype",
    "fit",
    "pad_batch",
    "padded_length",
    "param_groups",
    "record_fits",
    "resolve_device",
    "set_lr",
]
