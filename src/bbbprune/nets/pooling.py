"""2×2 max pooling (stride 2) with the numbers of ``nn.MaxPool2d(2)``, several times faster on
the CPU.

torch's CPU max_pool2d is slow on small planes: on one thread of a 2-core Intel Xeon it took
74 ms for a batch of 1,000 LeNet-5 first-layer activations (20×24×24), 39 % of a LeNet-5 run's
evaluation in a profile, and about 5 ms of a 19 ms LeNet-5 training step (batch 100, 2
threads). ``MaxPool2x2`` computes it by, in order of preference:

  * the C kernel ``layers/pool_kernel.c`` (``fused.FusedMaxPool2x2``), where the fused kernels
    are available (CPU, float32) and the height and width are even (LeNet-5's are): torch's
    rule exactly (a window's entries scanned row by row, an entry taken when larger than the
    running maximum or NaN; the gradient to the entry taken), so outputs and gradients are the
    same bits, in training and in evaluation;
  * without a C compiler and without gradients, ``max_pool_2x2``: four strided element-wise
    maxima. The same values, NaN where a window holds one; the one difference is the sign of
    a zero maximum reached by entries of both signs (−0 and +0 compare equal and change no sum
    with a non-zero term, no ReLU and no softmax after them);
  * otherwise (CUDA, where cuDNN's pooling is fast, or training without the C kernel) torch's.

Rows and columns beyond an even size are dropped (floor mode), as by max_pool2d.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import fused
from .convert import replace_module


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """max_pool2d(x, 2) by element-wise maxima of the windows' four entries (module docstring)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
    return torch.maximum(top, bottom)


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` computed as the module docstring says; to everything that inspects
    the network (export, structured shrinking) an ``nn.MaxPool2d`` with kernel 2 and stride 2."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0 and fused.supports(x):
            return fused.FusedMaxPool2x2.apply(x)
        if x.is_cuda or (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        return max_pool_2x2(x)


def with_torch_pooling(model: nn.Module) -> nn.Module:
    """``model`` with every ``MaxPool2x2`` replaced, in place, by the ``nn.MaxPool2d(2)`` it
    stands for: for libraries that look modules up by their exact class (BackPACK, under the
    Laplace method). Outputs do not change."""
    for name, module in list(model.named_modules()):
        if isinstance(module, MaxPool2x2):
            replace_module(model, name, nn.MaxPool2d(2))
    return model
