"""What every structured rebuild shares: the evaluation-mode weight and bias of a prunable
layer, and the module that keeps only the input features still read."""

from __future__ import annotations

import torch
from torch import nn


class SelectFeatures(nn.Module):
    """Keep the given columns of a (batch, features) input: the inputs the smaller net still reads."""

    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index.to(torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"{self.index.numel()} features"


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight an evaluation pass computes with: the point weight times the mask."""
    return layer.masked(layer.point_weight()).detach()


def effective_bias(layer: nn.Module) -> torch.Tensor:
    """The layer's (mean) bias, zeros when it has none."""
    bias = layer.bias_mu if hasattr(layer, "bias_mu") else getattr(layer, "bias", None)
    if bias is None:
        w = layer.point_weight()
        return torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    return bias.detach()
