"""Bayes by Backprop layers (Blundell, Cornebise, Kavukcuoglu & Wierstra 2015).

Each weight has a factorised Gaussian posterior q(w) = N(μ, σ²) with σ = softplus(ρ) = log(1 + e^ρ)
(Sec. 3.2). A training forward pass draws w = μ + σ∘ε, ε ~ N(0, I) (the reparameterisation of
Sec. 3.2, step 1–2); an evaluation pass uses the posterior mean μ unless sampling is switched on.

KL term (``kl()``), summed over every weight and bias of the layer:
  * ``"mc"``: the Monte Carlo estimate log q(w|θ) − log p(w) at the weights drawn in the last
    forward pass (Blundell Eq. 2 with one sample); works for any prior. Because w − μ = σ∘ε,
    log q(w) = Σ [−½ log 2π − log σ − ε²/2].
  * ``"closed_form"``: the exact KL(q ‖ p), available for the Gaussian prior.

Pruning: a 0/1 ``weight_mask`` multiplies the sampled weight (equivalently μ and σ together), so a
pruned weight is exactly 0 in sampled and mean passes alike. (Setting ρ = 0 instead, as some
public reproductions do, leaves σ = softplus(0) ≈ 0.69 of pure noise on every "pruned" weight.)

Sampling: on the CPU (float32) a fused kernel (``fused.py``) draws ε, forms w and evaluates the
MC KL in one pass, with a hand-written backward; ``fused=False`` or other devices use eager
PyTorch (same distribution, different random stream).

Local reparameterisation (Kingma, Salimans & Welling 2015) is an optional estimator: the
pre-activations are sampled from their Gaussian N(x·μ, x²·σ²) instead of the weights.

Minimal use in your own module::

    from . import BayesLinear, kl_divergence
    from .priors import ScaleMixturePrior
    prior = ScaleMixturePrior(0.5, 1.0, math.exp(-6))
    net = nn.Sequential(BayesLinear(784, 400, prior), nn.ReLU(), BayesLinear(400, 10, prior))
    loss = F.cross_entropy(net(x), y) + kl_divergence(net) / n_train
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from ..errors import UserError
from . import fused as fused_kernel
from .masked import BayesianLayer, check_groups
from .priors import LOG_SQRT_2PI, GaussianPrior

KL_ESTIMATORS = ("mc", "closed_form")


class _BayesLayer(BayesianLayer, nn.Module):
    """Parameters, sampling and KL shared by BayesLinear and BayesConv2d."""

    def __init__(
        self,
        weight_shape,
        fan_in: int,
        out: int,
        prior,
        bias: bool,
        rho_init: float,
        kl_estimator: str,
        local_reparam: bool,
        fused: bool,
    ):
        super().__init__()
        if kl_estimator not in KL_ESTIMATORS:
            raise UserError(
                f"unknown kl_estimator {kl_estimator!r}; valid: {', '.join(KL_ESTIMATORS)}"
            )
        if kl_estimator == "closed_form" and not isinstance(prior, GaussianPrior):
            raise UserError(f"kl_estimator=closed_form needs a Gaussian prior, not {prior!r}")
        self.prior = prior
        self.kl_estimator = kl_estimator
        self.local_reparam = local_reparam
        self.fused = fused
        self._prior_constants = fused_kernel.prior_constants(prior)
        bound = 1.0 / math.sqrt(fan_in)
        self.weight_mu = nn.Parameter(torch.empty(weight_shape).uniform_(-bound, bound))
        self.weight_rho = nn.Parameter(torch.full(weight_shape, float(rho_init)))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(out).uniform_(-bound, bound))
            self.bias_rho = nn.Parameter(torch.full((out,), float(rho_init)))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        self._init_mask()
        self.sample: bool | None = None  # None: sample when training, use μ when evaluating
        self._mc_kl: torch.Tensor | None = None

    # -- posterior ---------------------------------------------------------------------------
    def point_weight(self) -> torch.Tensor:
        return self.weight_mu

    def weight_sigma(self) -> torch.Tensor:
        return F.softplus(self.weight_rho)

    def _sampling(self) -> bool:
        return self.training if self.sample is None else self.sample

    def _draw(self, mu: torch.Tensor, rho: torch.Tensor, mask: torch.Tensor | None = None):
        """w = (μ + σ∘ε)∘mask, and the MC KL contribution log q(w) − log p(w) at the unmasked
        draw (None when the closed form is used). The fused kernel does both in one pass."""
        if self.fused and fused_kernel.supports(mu):
            w, kl = fused_kernel.FusedSample.apply(
                mu, rho, mask, fused_kernel.new_key(), self._prior_constants
            )
            return w, (kl if self.kl_estimator == "mc" else None)
        sigma = F.softplus(rho)
        eps = torch.randn_like(mu)
        w = torch.addcmul(mu, sigma, eps)
        kl = None
        if self.kl_estimator == "mc":
            log_q = -(sigma.log().sum() + 0.5 * eps.square().sum() + LOG_SQRT_2PI * mu.numel())
            kl = log_q - self.prior.log_prob(w)
        return (w if mask is None else w * mask), kl

    def _weights(self):
        """Weight and bias for this forward pass; records the MC KL of a sampled pass."""
        if not self._sampling():
            return self.masked(self.weight_mu), self.bias_mu
        w, kl_w = self._draw(self.weight_mu, self.weight_rho, self.weight_mask)
        b, kl_b = (None, None) if self.bias_mu is None else self._draw(self.bias_mu, self.bias_rho)
        if self.kl_estimator == "mc":
            self._mc_kl = kl_w if kl_b is None else kl_w + kl_b
        return w, b

    def kl(self) -> torch.Tensor:
        """The layer's KL(q ‖ p) summed over weights and biases (see module docstring)."""
        if self.kl_estimator == "closed_form":
            kl = self.prior.kl_closed_form(self.weight_mu, self.weight_sigma())
            if self.bias_mu is not None:
                kl = kl + self.prior.kl_closed_form(self.bias_mu, F.softplus(self.bias_rho))
            return kl
        if self.local_reparam and self._sampling():
            # local reparameterisation samples activations, not weights: draw one weight
            # sample for the KL estimate only.
            _, kl = self._draw(self.weight_mu, self.weight_rho)
            if self.bias_mu is not None:
                kl = kl + self._draw(self.bias_mu, self.bias_rho)[1]
            return kl
        if self._mc_kl is None:
            raise RuntimeError("kl_estimator='mc' needs a sampled forward pass before kl()")
        return self._mc_kl

    # -- forward -----------------------------------------------------------------------------
    def _op(self, x, w, b):
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.local_reparam and self._sampling():
            mean = self._op(x, self.masked(self.weight_mu), self.bias_mu)
            var_w = self.masked(self.weight_sigma().square())
            var_b = None if self.bias_rho is None else F.softplus(self.bias_rho).square()
            var = self._op(x.square(), var_w, var_b)
            return mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean)
        w, b = self._weights()
        return self._op(x, w, b)


class BayesLinear(_BayesLayer):
    """Fully connected layer with a factorised Gaussian posterior over weights and biases."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        prior,
        bias: bool = True,
        rho_init: float = -5.0,
        kl_estimator: str = "mc",
        local_reparam: bool = False,
        fused: bool = True,
    ):
        super().__init__(
            (out_features, in_features),
            in_features,
            out_features,
            prior,
            bias,
            rho_init,
            kl_estimator,
            local_reparam,
            fused,
        )
        self.in_features, self.out_features = in_features, out_features

    def _op(self, x, w, b):
        return F.linear(x, w, b)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, prior={self.prior!r}"


class BayesConv2d(_BayesLayer):
    """2-D convolution with a factorised Gaussian posterior over kernels and biases; any kernel
    size, stride, padding, dilation and groups, as nn.Conv2d (zero padding)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        prior,
        stride=1,
        padding=0,
        bias: bool = True,
        rho_init: float = -5.0,
        kl_estimator: str = "mc",
        local_reparam: bool = False,
        fused: bool = True,
        dilation=1,
        groups: int = 1,
    ):
        kh, kw = _pair(kernel_size)
        check_groups(in_channels, out_channels, groups)
        super().__init__(
            (out_channels, in_channels // groups, kh, kw),
            in_channels // groups * kh * kw,
            out_channels,
            prior,
            bias,
            rho_init,
            kl_estimator,
            local_reparam,
            fused,
        )
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size

    def _op(self, x, w, b):
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, prior={self.prior!r}"
        )


def bayes_layers(model: nn.Module) -> list[BayesianLayer]:
    """Every layer with a posterior (``BayesianLayer``: Bayes-by-Backprop, Sparse VD and
    spike-and-slab layers), with its ``sample`` flag and ``kl()``."""
    return [m for m in model.modules() if isinstance(m, BayesianLayer)]


def kl_divergence(model: nn.Module) -> torch.Tensor:
    """Σ over Bayesian layers of their KL terms: a sum over weights, not a mean."""
    return sum(layer.kl() for layer in bayes_layers(model))


@contextlib.contextmanager
def sampling(model: nn.Module, enabled: bool | None):
    """Force every Bayesian layer to sample (True), to use the mean (False), or to follow
    train/eval mode (None) inside the block."""
    layers = bayes_layers(model)
    before = [layer.sample for layer in layers]
    for layer in layers:
        layer.sample = enabled
    try:
        yield model
    finally:
        for layer, s in zip(layers, before, strict=True):
            layer.sample = s
