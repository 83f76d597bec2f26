"""Fine-tuning a pruned model with its masks fixed."""

from __future__ import annotations

import torch
from hydra.utils import instantiate

from .epoch import run_epoch


def finetune_model(model, method, cfg, data, epochs: int, lr_scale: float) -> None:
    """Retrain a pruned model for a few epochs with its masks fixed (Han et al. 2015 use 1/10 of
    the learning rate); masked weights stay exactly zero because the mask multiplies them."""
    factory = instantiate(cfg.method.optimizer)
    factory.keywords["lr"] = factory.keywords.get("lr", 1e-3) * lr_scale
    optimizer = method.make_optimizer(model, factory)
    shuffle = torch.Generator().manual_seed(int(cfg.seed) + 2)
    for epoch in range(epochs):
        run_epoch(model, method, optimizer, data, int(cfg.train.batch_size), shuffle, epoch)
