"""Weight priors for Bayes by Backprop (Blundell et al. 2015, Sec. 3.3).

Each prior gives ``log_prob(w)``: the log-density summed over all elements of ``w``.
The Gaussian prior also has a closed-form KL against a factorised Gaussian posterior.
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError, check_choice

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class GaussianPrior:
    """p(w) = Π_j N(w_j | 0, s²)."""

    def __init__(self, sigma: float):
        if sigma <= 0:
            raise UserError(f"prior sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.log_sigma = math.log(self.sigma)

    def log_prob(self, w: torch.Tensor) -> torch.Tensor:
        """Σ_j log N(w_j | 0, s²) = Σ_j [−½ log 2π − log s − w_j² / (2 s²)]."""
        n = w.numel()
        return -(w.square().sum() / (2 * self.sigma**2)) - n * (LOG_SQRT_2PI + self.log_sigma)

    def kl_closed_form(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, s²)) summed over elements:
        Σ [log(s/σ) + (σ² + μ²) / (2 s²) − ½]."""
        return (
            self.log_sigma * mu.numel()
            - sigma.log().sum()
            + (sigma.square().sum() + mu.square().sum()) / (2 * self.sigma**2)
            - 0.5 * mu.numel()
        )

    def __repr__(self) -> str:
        return f"GaussianPrior(sigma={self.sigma:g})"


class ScaleMixturePrior:
    """Blundell et al. (2015), Eq. 7: p(w) = Π_j [π N(w_j|0, σ1²) + (1 − π) N(w_j|0, σ2²)],
    with σ1 > σ2 (a wide slab and a narrow spike). Evaluated with logaddexp for stability."""

    def __init__(self, pi: float, sigma1: float, sigma2: float):
        if not 0.0 < pi < 1.0:
            raise UserError(f"scale-mixture pi must be in (0, 1), got {pi}")
        if sigma1 <= 0 or sigma2 <= 0:
            raise UserError(f"scale-mixture sigmas must be > 0, got {sigma1}, {sigma2}")
        self.pi, self.sigma1, self.sigma2 = float(pi), float(sigma1), float(sigma2)
        # log of each component's weight and normaliser, folded into one constant each
        self._c1 = math.log(self.pi) - math.log(self.sigma1) - LOG_SQRT_2PI
        self._c2 = math.log1p(-self.pi) - math.log(self.sigma2) - LOG_SQRT_2PI
        self._h1 = -0.5 / self.sigma1**2
        self._h2 = -0.5 / self.sigma2**2

    def log_prob(self, w: torch.Tensor) -> torch.Tensor:
        """Σ_j log[π N(w_j|0,σ1²) + (1−π) N(w_j|0,σ2²)]."""
        w2 = w.square()
        return torch.logaddexp(w2 * self._h1 + self._c1, w2 * self._h2 + self._c2).sum()

    def __repr__(self) -> str:
        return f"ScaleMixturePrior(pi={self.pi:g}, sigma1={self.sigma1:g}, sigma2={self.sigma2:g})"


PRIORS = ("gaussian", "scale_mixture")
# the keys of method.prior each kind reads (an experiment may add one with +method.prior.<key>)
PRIOR_KEYS = {
    "gaussian": ("neg_log_sigma",),
    "scale_mixture": ("pi", "neg_log_sigma1", "neg_log_sigma2"),
}


def build_prior(cfg) -> GaussianPrior | ScaleMixturePrior:
    """From config: ``kind: gaussian`` with ``neg_log_sigma`` (s = e^−x), or ``kind: scale_mixture``
    with ``pi``, ``neg_log_sigma1``, ``neg_log_sigma2`` (Blundell's grid is stated as −log σ)."""
    kind = check_choice("prior", cfg["kind"], PRIORS)
    if kind == "gaussian":
        return GaussianPrior(math.exp(-float(cfg["neg_log_sigma"])))
    return ScaleMixturePrior(
        float(cfg["pi"]),
        math.exp(-float(cfg["neg_log_sigma1"])),
        math.exp(-float(cfg["neg_log_sigma2"])),
    )
