"""Plain copies of a network: every prunable layer (deterministic, Bayes by Backprop, Sparse VD,
spike-and-slab) replaced by the nn.Linear / nn.Conv2d that computes its evaluation-mode pass, the
masked mean weight ``layer.masked(layer.point_weight())`` and the mean bias; every other module
kept. bbbprune.deploy.shrink removes dead units from such a copy; the Laplace method
(bbbprune.methods.laplace) fits its posterior on one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..layers import prunable_layers
from .convert import replace_module


def _mean_bias(layer: nn.Module):
    bias = layer.bias_mu if hasattr(layer, "bias_mu") else getattr(layer, "bias", None)
    return None if bias is None else bias.detach().clone()


def plain_layer(layer: nn.Module) -> nn.Module:
    """nn.Linear / nn.Conv2d computing what ``layer`` computes in an evaluation pass."""
    w = layer.masked(layer.point_weight()).detach().clone()
    b = _mean_bias(layer)
    if w.dim() == 2:
        new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    else:
        groups = int(getattr(layer, "groups", 1))
        new = nn.Conv2d(
            w.shape[1] * groups,
            w.shape[0],
            tuple(w.shape[2:]),
            stride=layer.stride,
            padding=layer.padding,
            dilation=getattr(layer, "dilation", 1),
            groups=groups,
            bias=b is not None,
        )
    new = new.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose prunable layers are plain layers with the masked mean weights."""
    # the MC KL a Bayes layer keeps from its last sampled pass is part of an autograd graph,
    # which deepcopy refuses; the copy does not need it
    kept = {m: m.__dict__.pop("_mc_kl") for m in model.modules() if "_mc_kl" in m.__dict__}
    try:
        out = copy.deepcopy(model)
    finally:
        for m, value in kept.items():
            m._mc_kl = value
    for name, layer in prunable_layers(out).items():
        replace_module(out, name, plain_layer(layer))
    return out.eval()
