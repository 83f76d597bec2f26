"""Spike-and-slab layers with one inclusion indicator per input node (Saha, Liu & Liang 2024,
"Efficient Model Compression for Bayesian Neural Networks", arXiv 2411.00273; the variational
spike-and-slab of Bai, Song & Cheng 2020, arXiv 2011.07439, moved from weights to nodes).

Model. Every layer has an indicator z_j ∈ {0, 1} per *input* node j (a network input for the
first layer, a hidden unit for the later ones; an input channel for convolutions), and the
*outgoing* weights of node j, the column W_{·j}, follow a spike-and-slab prior:

    z_j ~ Bernoulli(λ),   W_ij | z_j = 1 ~ N(0, s²),   W_ij | z_j = 0 = 0 exactly.

Outgoing rather than incoming weights, because z_j = 0 then silences node j for everything
above it: for the first layer it removes input feature j (feature selection), for the others
it removes hidden unit j (its incoming weights become dead weight that bbbprune.deploy.structured drops
as well). Every node except the network outputs has an indicator. Biases are point estimates.

Variational family (mean field over nodes and weights):

    q(z_j) = Bernoulli(γ_j),   q(W_ij | z_j = 1) = N(μ_ij, σ_ij²),   q(W_ij | z_j = 0) = δ_0,

with γ_j = sigmoid(``inclusion_logit``) and σ = softplus(ρ). γ_j is the posterior inclusion
probability (PIP) of node j.

KL (``kl()``, exact). Because q(W | z = 0) and p(W | z = 0) are the same point mass,

    KL(q ‖ p) = Σ_j KL(Bern(γ_j) ‖ Bern(λ)) + Σ_j γ_j Σ_i KL(N(μ_ij, σ_ij²) ‖ N(0, s²)),
    KL(Bern(γ) ‖ Bern(λ)) = γ log(γ/λ) + (1 − γ) log((1 − γ)/(1 − λ)),
    KL(N(μ, σ²) ‖ N(0, s²)) = log(s/σ) + (σ² + μ²)/(2s²) − ½

(Bai et al. 2020, Eq. 5 with one indicator shared by a column). The ELBO is
E_q[log p(D | W)] − KL; the trainer minimises the mean NLL of a minibatch plus KL / N.

Forward pass. Training: z̃_j is a binary-concrete (relaxed Bernoulli, Maddison, Mnih & Teh 2017;
Jang, Gu & Poole 2017) draw per example,

    z̃_j = sigmoid((logit γ_j + log u − log(1 − u)) / τ),   u ~ Uniform(0, 1),

so the expected log-likelihood is differentiable in γ (temperature τ = ``temperature``; as τ → 0
z̃ becomes Bernoulli(γ)). Given z̃, the pre-activations of W(x ∘ z̃) are Gaussian and are drawn
with the local reparameterisation trick (Kingma, Salimans & Welling 2015):

    b = (x ∘ z̃)·(μ ∘ m)ᵀ + bias + sqrt((x ∘ z̃)²·(σ² ∘ m)ᵀ + 1e-8) ∘ ε,   ε ~ N(0, I),

with m the 0/1 pruning mask (exact given z̃: the weights are independent Gaussians). A sampled
evaluation pass (``sample=True``) draws hard z_j ~ Bernoulli(γ_j) instead: a draw of the true
variational posterior. A mean evaluation pass uses the posterior-mean weight E_q[W_ij] = γ_j μ_ij
(``point_weight()``), so magnitude pruning and the structured rebuild need nothing specific.

Pruning. The median-probability rule keeps node j iff γ_j ≥ 0.5 (``bbbprune.pruning.thresholds.pip_masks``); ``pip()`` is
the per-node PIP, and bbbprune.pruning.criteria.pip_scores ranks weights by the PIP of their input node.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .masked import BayesianLayer

LRT_VARIANCE_EPS = 1e-8
UNIFORM_EPS = 1e-6  # u is drawn from [eps, 1 − eps] so that the logistic noise stays finite


def bernoulli_kl(logit: torch.Tensor, prior_inclusion: float) -> torch.Tensor:
    """Elementwise KL(Bern(γ) ‖ Bern(λ)) with γ = sigmoid(logit), from log-sigmoids (stable as
    γ → 0 or 1): γ (log γ − log λ) + (1 − γ)(log(1 − γ) − log(1 − λ))."""
    gamma = torch.sigmoid(logit)
    log_g, log_1mg = F.logsigmoid(logit), F.logsigmoid(-logit)
    lam = float(prior_inclusion)
    return gamma * (log_g - math.log(lam)) + (1 - gamma) * (log_1mg - math.log1p(-lam))


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, prior_std: float) -> torch.Tensor:
    """Elementwise KL(N(μ, σ²) ‖ N(0, s²)) = log(s/σ) + (σ² + μ²)/(2s²) − ½."""
    s = float(prior_std)
    return math.log(s) - sigma.log() + (sigma.square() + mu.square()) / (2 * s * s) - 0.5


class _StraightThrough(torch.autograd.Function):
    """Forward: the hard value, exactly (``hard + soft − soft.detach()`` is off by rounding);
    backward: the gradient goes to the soft value (straight-through estimator)."""

    @staticmethod
    def forward(ctx, hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        return hard.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, grad


class SpikeSlabLayer(BayesianLayer, nn.Module):
    """Parameters, node indicators, forward pass and KL shared by the linear and conv layers."""

    def __init__(
        self,
        weight_shape: tuple[int, ...],
        fan_in: int,
        n_nodes: int,
        prior_inclusion: float = 0.2,
        slab_std: float = 1.0,
        temperature: float = 0.5,
        pip_init: float = 0.9,
        rho_init: float = -5.0,
        straight_through: bool = False,
        node_indicators: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        if not 0.0 < float(prior_inclusion) < 1.0:
            raise UserError(f"method.prior_inclusion must be in (0, 1), got {prior_inclusion}")
        if not 0.0 < float(pip_init) < 1.0:
            raise UserError(f"method.pip_init must be in (0, 1), got {pip_init}")
        if not float(slab_std) > 0 or not float(temperature) > 0:
            raise UserError(
                f"method.slab_std and method.temperature must be > 0, got {slab_std}, {temperature}"
            )
        self.prior_inclusion = float(prior_inclusion)
        self.slab_std = float(slab_std)
        self.temperature = float(temperature)
        bound = 1.0 / math.sqrt(fan_in)
        self.weight_mu = nn.Parameter(torch.empty(weight_shape).uniform_(-bound, bound))
        self.weight_rho = nn.Parameter(torch.full(weight_shape, float(rho_init)))
        out = weight_shape[0]
        if bias:
            self.bias = nn.Parameter(torch.empty(out).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        logit = math.log(pip_init) - math.log1p(-pip_init)
        # node_indicators=False: no spike on this layer's inputs (z_j = 1, a Gaussian-slab layer;
        # e.g. MNIST pixels, which the node sweep leaves alone): no Bernoulli KL, PIP 1, and the
        # logits are an unused buffer (same state-dict keys) rather than parameters
        self.node_indicators = bool(node_indicators)
        if self.node_indicators:
            self.inclusion_logit = nn.Parameter(torch.full((n_nodes,), logit))
        else:
            self.register_buffer("inclusion_logit", torch.full((n_nodes,), logit))
        self._init_mask()
        self.sample: bool | None = None  # None: sample when training, posterior mean otherwise
        self.straight_through = bool(straight_through)
        self.given_mask = False  # True: point weights conditional on the mask (point_weight)

    # -- shapes (linear: nodes are columns; conv: nodes are input channels) --------------------
    def _node_view(self, t: torch.Tensor) -> torch.Tensor:
        """A per-node vector shaped to broadcast against the weight."""
        raise NotImplementedError

    def _input_view(self, t: torch.Tensor) -> torch.Tensor:
        """A (batch, nodes) tensor shaped to broadcast against the layer's input."""
        raise NotImplementedError

    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # -- posterior -----------------------------------------------------------------------------
    def pip(self) -> torch.Tensor:
        """Posterior inclusion probability γ_j of every input node."""
        if not self.node_indicators:
            return torch.ones_like(self.inclusion_logit)
        return torch.sigmoid(self.inclusion_logit)

    def weight_sigma(self) -> torch.Tensor:
        return F.softplus(self.weight_rho)

    def point_weight(self) -> torch.Tensor:
        """The posterior-mean weight E_q[W_ij] = γ_j μ_ij (before masking); with ``given_mask``
        the mean conditional on the indicators the mask selects, E_q[W_ij | z_j = m_j] = m_j μ_ij
        (m_j = 1 iff the mask keeps any outgoing weight of node j; every node without a mask)."""
        if self.given_mask:
            return self.weight_mu * self._node_view(self.mask_indicators())
        return self.weight_mu * self._node_view(self.pip())

    def mask_indicators(self) -> torch.Tensor:
        """Per node, 1 if the pruning mask keeps any of its outgoing weights (all 1 unmasked):
        the submodel z the mask selects."""
        if self.weight_mask is None:
            return torch.ones_like(self.inclusion_logit)
        per_node = (
            self.weight_mask.detach().transpose(0, 1).reshape(self.inclusion_logit.numel(), -1)
        )
        return (per_node != 0).any(dim=1).to(self.weight_mu.dtype)

    def kl(self) -> torch.Tensor:
        """Σ_j KL(Bern(γ_j) ‖ Bern(λ)) + Σ_j γ_j Σ_i KL(N(μ_ij, σ_ij²) ‖ N(0, s²)) (exact)."""
        per_weight = gaussian_kl(self.weight_mu, self.weight_sigma(), self.slab_std)
        slab = (per_weight * self._node_view(self.pip())).sum()
        if not self.node_indicators:
            return slab
        return bernoulli_kl(self.inclusion_logit, self.prior_inclusion).sum() + slab

    def _sampling(self) -> bool:
        return self.training if self.sample is None else self.sample

    def draw_indicators(self, batch: int, relaxed: bool) -> torch.Tensor:
        """Per-example indicators, shape (batch, nodes): binary-concrete draws at temperature τ
        (``relaxed``) or hard Bernoulli(γ) draws."""
        logit = self.inclusion_logit
        if not self.node_indicators:
            return torch.ones(batch, logit.numel(), dtype=logit.dtype, device=logit.device)
        u = torch.rand(batch, logit.numel(), dtype=logit.dtype, device=logit.device)
        if not relaxed:
            return (u < torch.sigmoid(logit)).to(logit.dtype)
        u = u.clamp(UNIFORM_EPS, 1 - UNIFORM_EPS)
        noisy_logit = logit + torch.log(u) - torch.log1p(-u)
        soft = torch.sigmoid(noisy_logit / self.temperature)
        if not self.straight_through:
            return soft
        # hard z = 1{logit γ + logistic noise > 0} ~ Bernoulli(γ) exactly, gradient of the soft z̃
        return _StraightThrough.apply((noisy_logit > 0).to(soft.dtype), soft)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._sampling():
            return self._op(x, self.masked(self.point_weight()), self.bias)
        z = self.draw_indicators(x.shape[0], relaxed=self.training)
        xz = x * self._input_view(z)
        mean = self._op(xz, self.masked(self.weight_mu), self.bias)
        var = self._op(xz.square(), self.masked(self.weight_sigma().square()), None)
        return mean + torch.sqrt(var + LRT_VARIANCE_EPS) * torch.randn_like(mean)


class SpikeSlabLinear(SpikeSlabLayer):
    """Fully connected spike-and-slab layer: weights (out, in), one indicator per input."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kw):
        super().__init__((out_features, in_features), in_features, in_features, bias=bias, **kw)
        self.in_features, self.out_features = in_features, out_features

    def _node_view(self, t):
        return t.view(1, -1)

    def _input_view(self, t):
        return t

    def _op(self, x, w, b):
        return F.linear(x, w, b)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, prior_inclusion={self.prior_inclusion}"


class SpikeSlabConv2d(SpikeSlabLayer):
    """2-D convolution with one indicator per input channel (kernels (out, in, k, k))."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        **kw,
    ):
        k = int(kernel_size)
        shape = (out_channels, in_channels, k, k)
        super().__init__(shape, in_channels * k * k, in_channels, bias=bias, **kw)
        self.stride, self.padding = stride, padding
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k

    def _node_view(self, t):
        return t.view(1, -1, 1, 1)

    def _input_view(self, t):
        return t.view(t.shape[0], -1, 1, 1)

    def _op(self, x, w, b):
        return F.conv2d(x, w, b, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


def spike_slab_layers(model: nn.Module) -> dict[str, SpikeSlabLayer]:
    """Every spike-and-slab layer, by module name, in order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SpikeSlabLayer)}
