"""Prunable layers: the mask every prunable layer shares (``PrunableMixin``), the base of the
layers with a posterior (``BayesianLayer``), and deterministic layers pruned by a fixed 0/1 mask.

A pruned weight is multiplied by 0 in every forward pass, so pruning acts on what the layer
actually computes. Until a mask is set the layer costs exactly what nn.Linear / nn.Conv2d cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PrunableMixin:
    """Shared mask handling: ``weight_mask`` is None (dense) or a 0/1 tensor shaped like the weight."""

    weight_mask: torch.Tensor | None

    def _init_mask(self) -> None:
        self.register_buffer("weight_mask", None)

    def set_weight_mask(self, mask: torch.Tensor | None) -> None:
        if mask is not None:
            shape = self.point_weight().shape
            if mask.shape != shape:
                raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(shape)}")
            mask = mask.to(dtype=self.point_weight().dtype, device=self.point_weight().device)
        self.weight_mask = mask

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # masks travel with the state dict: a pruned state loads pruned, a dense one dense
        key = prefix + "weight_mask"
        self.weight_mask = state_dict[key].clone() if key in state_dict else None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def masked(self, w: torch.Tensor) -> torch.Tensor:
        return w if self.weight_mask is None else w * self.weight_mask


class BayesianLayer(PrunableMixin):
    """A prunable layer with a posterior over its weights: a ``sample`` flag (True: draw weights,
    False: use the mean, None: follow train/eval mode) and ``kl()``, its KL term summed over its
    weights. Every Bayesian layer family derives from it, so ``bayes_layers`` and ``sampling``
    find them all without knowing the families."""

    sample: bool | None

    def kl(self) -> torch.Tensor:
        raise NotImplementedError


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """nn.Conv2d's rule: both channel counts divisible by ``groups``."""
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
        )


class MaskedLinear(PrunableMixin, nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self._init_mask()

    def point_weight(self) -> torch.Tensor:
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked(self.weight), self.bias)


class MaskedConv2d(PrunableMixin, nn.Conv2d):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        dilation=1,
        groups: int = 1,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self._init_mask()

    def point_weight(self) -> torch.Tensor:
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.masked(self.weight), self.bias)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every layer with a prunable weight (biases are never pruned), by module name, in order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PrunableMixin)}
