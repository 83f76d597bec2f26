"""Deterministic layers that carry a Laplace posterior standard deviation per weight.

A Laplace approximation (MacKay 1992; Daxberger et al. 2021, "Laplace Redux") keeps the trained
weights w as the posterior mean and sets the posterior precision to the curvature of the negative
log joint at w: P = H + λI, with H a generalised Gauss-Newton approximation of the Hessian of
the data term. These layers compute exactly what MaskedLinear / MaskedConv2d compute (the mean
network) and store σ = sqrt(diag(P⁻¹)) in the buffer ``posterior_sigma`` (NaN until fitted;
bbbprune.methods.laplace fits it). ``weight_mu`` and ``weight_sigma()`` make the posterior
readable by the signal-to-noise criterion |w|/σ (bbbprune.pruning.criteria.snr_scores).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .masked import MaskedConv2d, MaskedLinear


class _LaplaceMixin:
    weight: nn.Parameter
    posterior_sigma: torch.Tensor

    def _init_sigma(self) -> None:
        self.register_buffer("posterior_sigma", torch.full_like(self.weight, float("nan")))

    @property
    def weight_mu(self) -> torch.Tensor:
        """The posterior mean: the trained weight."""
        return self.weight

    def weight_sigma(self) -> torch.Tensor:
        """Posterior standard deviation of every weight, sqrt(diag(P⁻¹))."""
        if torch.isnan(self.posterior_sigma).any():
            raise UserError("the Laplace posterior has not been fitted (posterior_sigma is NaN)")
        return self.posterior_sigma


class LaplaceLinear(_LaplaceMixin, MaskedLinear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self._init_sigma()


class LaplaceConv2d(_LaplaceMixin, MaskedConv2d):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, **kw):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, **kw)
        self._init_sigma()
