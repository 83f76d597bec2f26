"""Learning-rate schedules that are awkward to spell in YAML, built as LambdaLR (stepped once per
epoch by the trainer)."""

from __future__ import annotations

import torch

from ..errors import UserError


def constant_then_linear(optimizer, total_epochs: int, decay_from: float = 0.5):
    """Constant learning rate for the first ``decay_from`` share of the epochs, then linear to 0
    at the end (Molchanov et al.'s Sparse VD code: constant to epoch 100, zero at 200)."""
    if not 0.0 <= decay_from < 1.0:
        raise UserError(f"decay_from must be in [0, 1), got {decay_from}")
    start = int(round(decay_from * total_epochs))
    span = max(total_epochs - start, 1)

    def factor(epoch: int) -> float:
        return 1.0 if epoch < start else max(0.0, 1.0 - (epoch - start) / span)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
