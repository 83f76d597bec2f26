"""The layer factory a method hands to an architecture (bbbprune.nets.models, resnets)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LayerFactory:
    """``linear(in, out)`` and ``conv(in, out, kernel, stride, padding)`` build prunable layers
    (factories that take ``bias=``, ``dilation=`` and ``groups=`` keywords also serve any
    torchvision network, bbbprune.nets.torchvision)."""

    linear: Callable[[int, int], nn.Module]
    conv: Callable[..., nn.Module]
