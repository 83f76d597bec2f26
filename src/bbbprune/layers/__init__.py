"""Layers: deterministic layers with a pruning mask, Bayes-by-Backprop, Sparse VD and
spike-and-slab layers, their priors and likelihoods, and prediction in a mode (mean or sampled)."""

from .bayes import BayesConv2d, BayesLinear, bayes_layers, kl_divergence, sampling
from .masked import MaskedConv2d, MaskedLinear, prunable_layers
from .sparse_vd import Conv2dSVD, Conv2dSVDGroup, LinearSVD, LinearSVDGroup
from .spike_slab import SpikeSlabConv2d, SpikeSlabLinear

__all__ = [
    "BayesConv2d",
    "Conv2dSVD",
    "Conv2dSVDGroup",
    "LinearSVD",
    "LinearSVDGroup",
    "BayesLinear",
    "MaskedConv2d",
    "MaskedLinear",
    "bayes_layers",
    "kl_divergence",
    "prunable_layers",
    "sampling",
    "SpikeSlabConv2d",
    "SpikeSlabLinear",
]
