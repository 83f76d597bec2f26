"""Sparse variational dropout layers (Molchanov, Ashukha & Vetrov 2017, "Variational Dropout
Sparsifies Deep Neural Networks", arXiv 1701.05369).

Posterior and parameterisation. Every weight has a factorised Gaussian posterior
q(w_ij) = N(θ_ij, σ²_ij) in the *additive* parameterisation of Sec. 4.1: the parameters are θ
(``theta``) and log σ² (``log_sigma2``, initialised at −10), and the dropout rate is derived,
α_ij = σ²_ij / θ²_ij. As in the authors' code, ``log_alpha()`` is
clip(log σ² − log(θ² + 1e-8), −8, 8). Biases are deterministic (a point estimate).

Prior and KL (``kl()``, summed over every weight of the layer, masked or not):
  * ``prior="log_uniform"`` — p(|w|) ∝ 1/|w|. The KL depends on α only and is approximated
    by their Eq. 14 (Sec. 4.2):  −KL ≈ k1·sigmoid(k2 + k3·log α) − ½·log(1 + 1/α) − k1,
    with k1 = 0.63576, k2 = 1.87320, k3 = 1.48695 (the constant −k1 makes −KL → 0 as α → ∞).
  * ``prior="ard"`` — automatic relevance determination: p(w_ij) = N(0, 1/τ_ij) with the
    precision τ_ij optimised in closed form, τ* = 1/(θ² + σ²), which leaves
    KL = ½·log(1 + 1/α) (the ARD comparison of the paper; derivation in the seed 002 lecture).

Forward pass. A training pass (or any pass with ``sample=True``) uses the local
reparameterisation trick (Kingma, Salimans & Welling 2015, used by Molchanov et al.): the
pre-activations are drawn from their Gaussian,
    b = x·(θ∘m)ᵀ + bias + sqrt(x²·(σ²∘m)ᵀ + 1e-8) ∘ ε,   ε ~ N(0, I),
with m the 0/1 pruning mask. For convolutions the same is done with conv2d(x, θ∘m) and
conv2d(x², σ²∘m): exact for each output position, with the correlation between overlapping
positions ignored (the usual approximation, as in the authors' code). The variance uses σ²
itself (not the clipped α·θ²), as in the authors' PyTorch code. An evaluation pass uses the
posterior mean θ∘m. ``sample`` follows bayes.py: None samples iff ``training``;
``bbbprune.layers.sampling(model, flag)`` switches these layers too.

Pruning. ``point_weight()`` is the weight an evaluation pass computes with before masking (θ,
or θ·μ_z for the group layers below), so magnitude pruning and the structured rebuild
(bbbprune.deploy.structured) need nothing method-specific. The method's own rule, remove every weight
with log α ≥ 3, is ``bbbprune.pruning.thresholds.threshold_masks``.

Structured variant (``LinearSVDGroup`` / ``Conv2dSVDGroup``). Each input neuron (linear) or
input channel (conv) j is multiplied by a group variable z_j, so the layer computes
W(x ∘ z) + bias (seed 002, "Structured Bayesian sparsification"; Lobacheva, Chirkova & Vetrov
2018; the group variables of Louizos, Ullrich & Welling 2017). q(z_j) = N(μ_z, α_z·μ_z²) with
the additive parameters ``group_mu`` (init 1) and ``group_log_sigma2`` (init −10), and z has the
same prior as the weights, so its KL is the same approximation in ``group_log_alpha()``. The
weights keep their own per-weight Sparse VD posterior (not point estimates), because:
  * with a log-uniform prior on both z and W, the product z_j·w_ij again has a log-uniform
    marginal prior, so the model is Sparse VD with additional group sparsity (seed 002);
  * the per-weight log α keeps the ``log_alpha`` criterion and the threshold rule meaningful for
    every layer of every Sparse VD method, and gives weight-level and neuron-level sparsity
    together.
Training draws z per example, z = μ_z + σ_z·ε (plain reparameterisation per example — the local
reparameterisation of multiplicative noise), then applies the weight LRT above to x ∘ z, which
is exact given z. Evaluation uses z = μ_z. A weight is removed when its own log α or its
group's log α reaches the threshold (``effective_log_alpha()`` is the larger of the two), which
removes whole input neurons / channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from ..errors import check_choice
from . import fused
from .masked import BayesianLayer, check_groups

K1, K2, K3 = 0.63576, 1.87320, 1.48695  # Molchanov et al. 2017, Eq. 14
LOG_ALPHA_MIN, LOG_ALPHA_MAX = -8.0, 8.0
THETA2_EPS = 1e-8  # log α = log σ² − log(θ² + 1e-8)
LRT_VARIANCE_EPS = 1e-8  # sqrt(var + 1e-8) in the local reparameterisation
PRIORS = ("log_uniform", "ard")


def clipped_log_alpha(log_sigma2: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """log α = clip(log σ² − log(mean² + 1e-8), −8, 8) (additive parameterisation, Sec. 4.1)."""
    log_alpha = log_sigma2 - torch.log(mean.square() + THETA2_EPS)
    return log_alpha.clamp(LOG_ALPHA_MIN, LOG_ALPHA_MAX)


def log_uniform_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(θ, αθ²) ‖ log-uniform) by Molchanov et al. 2017, Eq. 14:
    KL ≈ −(k1·sigmoid(k2 + k3·log α) − ½·log(1 + 1/α) − k1). ½·log(1 + 1/α) is softplus(−log α)."""
    neg_kl = K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - K1
    return -neg_kl


def ard_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(θ, σ²) ‖ N(0, 1/τ*)) at the optimal precision τ* = 1/(θ² + σ²):
    −log σ − ½ log τ* + ½ τ*(θ² + σ²) − ½ = ½·log(1 + θ²/σ²) = ½·log(1 + 1/α)."""
    return 0.5 * F.softplus(-log_alpha)


KL_FUNCTIONS = {"log_uniform": log_uniform_kl, "ard": ard_kl}


def weight_kl(theta: torch.Tensor, log_sigma2: torch.Tensor, prior: str) -> torch.Tensor:
    """Σ_ij KL of the weights (θ, log σ²) under ``prior``: the fused kernel where it applies
    (CPU, float32, a C compiler), else ``KL_FUNCTIONS[prior]`` of the clipped log α, summed."""
    if fused.supports(theta):
        return fused.SparseVDKL.apply(theta, log_sigma2, prior == "ard", (K1, K2, K3))
    return KL_FUNCTIONS[prior](clipped_log_alpha(log_sigma2, theta)).sum()


class SparseVDLayer(BayesianLayer, nn.Module):
    """Parameters, local reparameterisation and KL shared by LinearSVD and Conv2dSVD."""

    def __init__(
        self,
        weight_shape: tuple[int, ...],
        fan_in: int,
        out: int,
        bias: bool,
        prior: str,
        log_sigma2_init: float,
    ):
        super().__init__()
        self.prior = check_choice("Sparse VD prior", prior, PRIORS)
        bound = 1.0 / math.sqrt(fan_in)
        self.theta = nn.Parameter(torch.empty(weight_shape).uniform_(-bound, bound))
        self.log_sigma2 = nn.Parameter(torch.full(weight_shape, float(log_sigma2_init)))
        if bias:
            self.bias = nn.Parameter(torch.empty(out).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        self._init_mask()
        self.sample: bool | None = None  # None: sample when training, use θ when evaluating

    # -- posterior ---------------------------------------------------------------------------
    def point_weight(self) -> torch.Tensor:
        """The evaluation-mode weight before masking: the posterior mean θ."""
        return self.theta

    def log_alpha(self) -> torch.Tensor:
        """Per-weight log α = clip(log σ² − log(θ² + 1e-8), −8, 8)."""
        return clipped_log_alpha(self.log_sigma2, self.theta)

    def effective_log_alpha(self) -> torch.Tensor:
        """The per-weight log α the pruning rule compares with the threshold."""
        return self.log_alpha()

    def kl(self) -> torch.Tensor:
        """Σ over every weight of KL(q(w) ‖ p(w)) for this layer's prior (module docstring);
        on the CPU in float32, by the fused kernel (bbbprune.layers.fused.SparseVDKL)."""
        return weight_kl(self.theta, self.log_sigma2, self.prior)

    def _sampling(self) -> bool:
        return self.training if self.sample is None else self.sample

    # -- forward -----------------------------------------------------------------------------
    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _local_reparameterisation(self, x: torch.Tensor) -> torch.Tensor:
        """b = x·(θ∘m)ᵀ + bias + sqrt(x²·(σ²∘m)ᵀ + 1e-8)∘ε (local reparameterisation)."""
        mean = self._op(x, self.masked(self.theta), self.bias)
        var = self._op(x.square(), self.masked(self.log_sigma2.exp()), None)
        return mean + torch.sqrt(var + LRT_VARIANCE_EPS) * torch.randn_like(mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sampling():
            return self._local_reparameterisation(x)
        return self._op(x, self.masked(self.theta), self.bias)


class LinearSVD(SparseVDLayer):
    """Fully connected Sparse VD layer (weights (out, in), deterministic bias)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        prior: str = "log_uniform",
        log_sigma2_init: float = -10.0,
    ):
        super().__init__(
            (out_features, in_features), in_features, out_features, bias, prior, log_sigma2_init
        )
        self.in_features, self.out_features = in_features, out_features

    def _op(self, x, w, b):
        return F.linear(x, w, b)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, prior={self.prior}"


class Conv2dSVD(SparseVDLayer):
    """2-D convolution with Sparse VD kernels (out, in/groups, kh, kw) and a deterministic bias;
    any kernel size, stride, padding, dilation and groups, as nn.Conv2d (zero padding)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        prior: str = "log_uniform",
        log_sigma2_init: float = -10.0,
        dilation=1,
        groups: int = 1,
    ):
        kh, kw = _pair(kernel_size)
        check_groups(in_channels, out_channels, groups)
        super().__init__(
            (out_channels, in_channels // groups, kh, kw),
            in_channels // groups * kh * kw,
            out_channels,
            bias,
            prior,
            log_sigma2_init,
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
            f"groups={self.groups}, prior={self.prior}"
        )


class _InputGroupMixin:
    """Group variables z_j on the layer's inputs: the layer computes W(x ∘ z) + bias with
    q(z_j) = N(μ_z, α_z·μ_z²) (module docstring, "Structured variant")."""

    theta: nn.Parameter
    log_sigma2: nn.Parameter

    def _init_groups(self, n_groups: int, log_sigma2_init: float) -> None:
        self.group_mu = nn.Parameter(torch.ones(n_groups))
        self.group_log_sigma2 = nn.Parameter(torch.full((n_groups,), float(log_sigma2_init)))

    def _group_view(self, t: torch.Tensor) -> torch.Tensor:
        """Reshape a per-group vector to broadcast against the weight (over its input axis)."""
        raise NotImplementedError

    def _input_view(self, t: torch.Tensor) -> torch.Tensor:
        """Reshape a (batch, groups) tensor to broadcast against the layer's input."""
        raise NotImplementedError

    def group_log_alpha(self) -> torch.Tensor:
        """Per-group log α_z = clip(log σ_z² − log(μ_z² + 1e-8), −8, 8)."""
        return clipped_log_alpha(self.group_log_sigma2, self.group_mu)

    def point_weight(self) -> torch.Tensor:
        """The evaluation-mode weight before masking: θ_ij·μ_z,j (z at its posterior mean)."""
        return self.theta * self._group_view(self.group_mu)

    def effective_log_alpha(self) -> torch.Tensor:
        """max(log α_ij, log α_z,j): a weight goes when it or its input group reaches the
        threshold, so thresholding this removes whole input neurons / channels."""
        group = self._group_view(self.group_log_alpha()).expand_as(self.theta)
        return torch.maximum(self.log_alpha(), group)

    def kl(self) -> torch.Tensor:
        """Σ KL over the weights plus Σ KL over the group variables (the same prior for both)."""
        return weight_kl(self.theta, self.log_sigma2, self.prior) + weight_kl(
            self.group_mu, self.group_log_sigma2, self.prior
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sampling():
            eps = torch.randn(x.shape[0], self.group_mu.numel(), dtype=x.dtype, device=x.device)
            z = self.group_mu + torch.exp(0.5 * self.group_log_sigma2) * eps  # per example
            return self._local_reparameterisation(x * self._input_view(z))
        return self._op(x, self.masked(self.point_weight()), self.bias)


class LinearSVDGroup(_InputGroupMixin, LinearSVD):
    """LinearSVD with a group variable per input neuron (structured Sparse VD)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        prior: str = "log_uniform",
        log_sigma2_init: float = -10.0,
    ):
        super().__init__(in_features, out_features, bias, prior, log_sigma2_init)
        self._init_groups(in_features, log_sigma2_init)

    def _group_view(self, t):
        return t.view(1, -1)

    def _input_view(self, t):
        return t


class Conv2dSVDGroup(_InputGroupMixin, Conv2dSVD):
    """Conv2dSVD with a group variable per input channel (structured Sparse VD)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        prior: str = "log_uniform",
        log_sigma2_init: float = -10.0,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, bias, prior, log_sigma2_init
        )
        self._init_groups(in_channels, log_sigma2_init)

    def _group_view(self, t):
        return t.view(1, -1, 1, 1)

    def _input_view(self, t):
        return t.view(t.shape[0], -1, 1, 1)


def sparse_vd_layers(model: nn.Module) -> dict[str, SparseVDLayer]:
    """Every Sparse VD layer, by module name, in order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SparseVDLayer)}


def sparse_vd_kl(model: nn.Module) -> torch.Tensor:
    """Σ over Sparse VD layers of their KL terms: a sum over weights (and groups), not a mean."""
    layers = list(sparse_vd_layers(model).values())
    if not layers:
        return torch.zeros(())
    total = layers[0].kl()
    for layer in layers[1:]:
        total = total + layer.kl()
    return total
