"""Pruning: criteria (score functions), one masking function, thresholds; the library entry
points ``prune_model`` and ``sparsity`` (bbbprune.prune holds the criteria)."""

from __future__ import annotations

from torch import nn

from ..prune import SCORE_FUNCTIONS
from ..prune import prune_model as _prune_model
from ..prune import sparsity as _sparsity

__all__ = ["SCORE_FUNCTIONS", "prune_model", "sparsity"]


def prune_model(model: nn.Module, criterion: str, fraction: float, scope: str = "global", seed=0):
    """Remove ``round(fraction · n)`` of the n prunable weights of ``model`` (the weights of its
    linear and conv layers, biases never) with the lowest scores of ``criterion`` — ``snr``
    (|μ|/σ, Blundell et al. 2015), ``log_alpha`` (Molchanov et al. 2017), ``magnitude`` (|w|,
    Han et al. 2015), ``random``, ``pip`` — over all layers together (``scope="global"``) or in
    every layer (``"layer"``). A removed weight is multiplied by 0 in every forward pass, sampled
    or not. Returns the 0/1 masks by layer name."""
    return _prune_model(model, criterion, fraction, scope, seed)


def sparsity(model: nn.Module) -> dict:
    """``{"sparsity": removed / prunable, "prunable", "removed", "per_layer": {...}}``."""
    return _sparsity(model)
