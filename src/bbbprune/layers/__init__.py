"""Layers: deterministic layers with a pruning mask, and Bayes-by-Backprop layers."""

from .bayes import BayesConv2d, BayesLinear, bayes_layers, kl_divergence, sampling
from .masked import MaskedConv2d, MaskedLinear, prunable_layers

__all__ = [
    "BayesConv2d",
    "BayesLinear",
    "MaskedConv2d",
    "MaskedLinear",
    "bayes_layers",
    "kl_divergence",
    "prunable_layers",
    "sampling",
]
