"""Sparse variational dropout (Molchanov, Ashukha & Vetrov 2017): the KL approximation against a
numerical integral, log α clipping, local reparameterisation against sampled weights, masks that
really prune, the log α ≥ 3 rule, the physically smaller rebuilt network, the method contract."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config
from torch import nn

from bbbprune.deploy.structured import kept_widths, shrink, shrink_lenet5, shrink_mlp
from bbbprune.errors import UserError
from bbbprune.layers import BayesLinear, MaskedConv2d, MaskedLinear, sampling
from bbbprune.layers.priors import GaussianPrior
from bbbprune.layers.sparse_vd import (
    K1,
    Conv2dSVD,
    Conv2dSVDGroup,
    LinearSVD,
    LinearSVDGroup,
    log_uniform_kl,
)
from bbbprune.methods import SparseVD, StepInfo, build_method
from bbbprune.methods.sparse_vd import kl_warmup_weight
from bbbprune.nets.factory import LayerFactory
from bbbprune.nets.models import MLP, LeNet5, build_model, count_parameters
from bbbprune.pruning.criteria import log_alpha_scores, prune_model
from bbbprune.pruning.masking import masks_from_scores, sparsity
from bbbprune.pruning.thresholds import apply_threshold, compression, threshold_masks


def expected_log_abs_eps(log_alpha: float, step: float = 2e-5) -> float:
    """E_{ε~N(1, α)} log|ε| = ½ log α + E_{z~N(0,1)} log|z + 1/√α|, by the midpoint rule on
    [−12, 12] in float64 (the log singularity is integrable; the grid never hits it)."""
    z = torch.arange(-12.0, 12.0, step, dtype=torch.float64) + step / 2
    phi = torch.exp(-z.square() / 2) / math.sqrt(2 * math.pi)
    inner = (torch.log((z + math.exp(-log_alpha / 2)).abs()) * phi).sum() * step
    return 0.5 * log_alpha + inner.item()


def test_kl_approximation_matches_the_numerical_log_uniform_kl():
    """−KL(N(θ, αθ²) ‖ log-uniform) = C + ½ log α − E_{ε~N(1,α)} log|ε| (Molchanov Sec. 4.2).
    Eq. 14's fit must differ from it by one constant at every α; that constant is −k1, chosen
    so that −KL → 0 as α → ∞."""
    offsets = []
    for log_alpha in (-6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0, 8.0):
        exact_up_to_c = 0.5 * log_alpha - expected_log_abs_eps(log_alpha)
        approx = -log_uniform_kl(torch.tensor(log_alpha, dtype=torch.float64)).item()
        offsets.append(approx - exact_up_to_c)
    assert max(offsets) - min(offsets) < 0.015
    assert all(abs(o - (-K1)) < 0.01 for o in offsets), offsets


def test_kl_is_a_sum_over_weights_and_vanishes_for_large_alpha():
    layer = LinearSVD(4, 3)
    with torch.no_grad():
        layer.theta.fill_(0.5)
        layer.log_sigma2.fill_(math.log(0.25) + 1.0)  # log α = 1 for every weight
    one = log_uniform_kl(torch.tensor(1.0)).item()
    assert layer.kl().item() == pytest.approx(12 * one, rel=1e-5)
    assert log_uniform_kl(torch.tensor(8.0)).item() == pytest.approx(0.0, abs=2e-4)


def test_ard_kl_by_hand():
    """ARD: KL(N(θ, σ²) ‖ N(0, 1/τ)) = −log σ − ½ log τ + ½ τ (θ² + σ²) − ½ at the optimal
    precision τ* = 1/(θ² + σ²) equals ½ log(1 + θ²/σ²), and τ* does minimise it."""
    layer = LinearSVD(2, 2, bias=False, prior="ard")
    theta = torch.tensor([[0.5, -1.0], [0.2, 2.0]])
    sigma2 = torch.tensor([[0.01, 0.5], [0.04, 1.0]])
    with torch.no_grad():
        layer.theta.copy_(theta)
        layer.log_sigma2.copy_(sigma2.log())

    def gaussian_kl(tau):
        return -0.5 * sigma2.log() - 0.5 * tau.log() + 0.5 * tau * (theta**2 + sigma2) - 0.5

    tau_star = 1 / (theta**2 + sigma2)
    assert layer.kl().item() == pytest.approx(gaussian_kl(tau_star).sum().item(), rel=1e-5)
    assert layer.kl().item() == pytest.approx(
        (0.5 * torch.log1p(theta**2 / sigma2)).sum().item(), rel=1e-5
    )
    for factor in (0.5, 0.9, 1.1, 2.0):
        assert (gaussian_kl(tau_star * factor) > gaussian_kl(tau_star)).all()


def test_log_alpha_is_clipped_to_minus_8_and_8():
    layer = LinearSVD(3, 1, bias=False)
    with torch.no_grad():
        layer.theta.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
        layer.log_sigma2.copy_(torch.tensor([[-20.0, 0.5, 20.0]]))
    assert torch.allclose(layer.log_alpha(), torch.tensor([[-8.0, 0.5, 8.0]]))
    with torch.no_grad():
        layer.theta.zero_()  # θ = 0: log(θ² + 1e-8) keeps log α finite
    expected = (torch.tensor([[-20.0, 0.5, 20.0]]) - math.log(1e-8)).clamp(-8, 8)
    assert torch.allclose(layer.log_alpha(), expected)  # [−1.58, 8, 8]


def _lrt_vs_sampled_weights(layer, x, draws=20000):
    """Output draws of the layer (local reparameterisation, one row per draw) and of explicitly
    sampled weights w = θ + σ∘ε applied to the same input (conv: as a product with its patches)."""
    with torch.no_grad(), sampling(layer, True):
        lrt = layer(x.expand(draws, *x.shape[1:]))
        w = layer.theta + layer.log_sigma2.exp().sqrt() * torch.randn(draws, *layer.theta.shape)
        if isinstance(layer, LinearSVD):
            direct = torch.einsum("i,doi->do", x[0], w) + layer.bias
        else:
            patches = F.unfold(x, layer.kernel_size)[0]  # (in·k·k, positions)
            direct = torch.einsum("dof,fl->dol", w.flatten(2), patches)
            direct = direct.view(draws, *lrt.shape[1:]) + layer.bias.view(1, -1, 1, 1)
    return lrt, direct


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_local_reparameterisation_matches_sampled_weights(kind):
    """Drawing the pre-activations from N(x·θ, x²·σ²) gives the mean and variance of drawing the
    weights (Monte Carlo; for conv each output position separately)."""
    torch.manual_seed(0)
    if kind == "linear":
        layer, x = LinearSVD(5, 3, log_sigma2_init=math.log(0.3)), torch.randn(1, 5)
    else:
        layer, x = Conv2dSVD(2, 2, 3, log_sigma2_init=math.log(0.3)), torch.randn(1, 2, 4, 4)
    lrt, direct = _lrt_vs_sampled_weights(layer, x)
    closed_mean = layer._op(x, layer.theta, layer.bias)[0].detach()
    closed_var = layer._op(x.square(), layer.log_sigma2.exp(), None)[0].detach()
    for draws in (lrt, direct):
        stderr = (closed_var.sqrt() / math.sqrt(len(draws))).max().item()
        assert torch.allclose(draws.mean(0), closed_mean, atol=6 * stderr)
        assert torch.allclose(draws.var(0), closed_var, rtol=0.08)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_group_noise_gives_the_moments_of_z_times_w(kind):
    """With z_j ~ N(μ_j, s_j) on input j (a neuron, or a whole channel) and w ~ N(θ, σ²), the
    output is Σ_j z_j·u_j + b with u_j = op(x_j, w_j) ~ N(op(x_j, θ_j), op(x_j², σ²_j)). So
    mean = Σ_j μ_j·op(x_j, θ_j) + b and variance = Σ_j [(μ_j² + s_j)·op(x_j², σ²_j) +
    s_j·op(x_j, θ_j)²] (z_j is shared by every position of channel j: the square is outside)."""
    torch.manual_seed(0)
    if kind == "linear":
        layer, x = LinearSVDGroup(4, 3, log_sigma2_init=math.log(0.05)), torch.randn(1, 4)
    else:
        layer, x = Conv2dSVDGroup(2, 2, 3, log_sigma2_init=math.log(0.05)), torch.randn(1, 2, 3, 4)
    with torch.no_grad():
        layer.group_mu.copy_(torch.linspace(0.5, 1.5, layer.group_mu.numel()))
        layer.group_log_sigma2.fill_(math.log(0.2))
        mu, s = layer.group_mu, layer.group_log_sigma2.exp()
        theta, sigma2 = layer.theta, layer.log_sigma2.exp()
        mean, var = layer.bias.view(-1, *[1] * (x.dim() - 2)), 0.0
        for j in range(mu.numel()):
            xj = x[:, j : j + 1]
            u_mean = layer._op(xj, theta[:, j : j + 1], None)[0]
            u_var = layer._op(xj.square(), sigma2[:, j : j + 1], None)[0]
            mean = mean + mu[j] * u_mean
            var = var + (mu[j] ** 2 + s[j]) * u_var + s[j] * u_mean.square()
        with sampling(layer, True):
            draws = layer(x.expand(40000, *x.shape[1:]))
    stderr = (var.sqrt() / math.sqrt(len(draws))).max().item()
    assert torch.allclose(draws.mean(0), mean, atol=6 * stderr)
    assert torch.allclose(draws.var(0), var, rtol=0.06)
    layer.eval()  # evaluation: z at its mean
    assert torch.allclose(layer(x)[0], mean, atol=1e-6)


def test_sampling_switch_controls_sparse_vd_layers():
    """bbbprune.layers.sampling works as for Bayes-by-Backprop layers: forced noise in eval mode,
    forced mean in training mode."""
    torch.manual_seed(0)
    net = nn.Sequential(LinearSVD(4, 3, log_sigma2_init=0.0), nn.ReLU(), LinearSVDGroup(3, 2))
    x = torch.randn(8, 4)
    net.eval()
    mean = net(x)
    with sampling(net, True):
        assert not torch.equal(net(x), mean)
    net.train()
    with sampling(net, False):
        assert torch.equal(net(x), mean)


LAYERS = {
    "linear": (lambda: LinearSVD(6, 3, log_sigma2_init=0.0), (3, 6), (5, 6), 2),
    "linear_group": (lambda: LinearSVDGroup(6, 3, log_sigma2_init=0.0), (3, 6), (5, 6), 2),
    "conv": (lambda: Conv2dSVD(3, 2, 3, log_sigma2_init=0.0), (2, 3, 3, 3), (5, 3, 4, 4), 1),
    "conv_group": (
        lambda: Conv2dSVDGroup(3, 2, 3, log_sigma2_init=0.0),
        (2, 3, 3, 3),
        (5, 3, 4, 4),
        1,
    ),
}


@pytest.mark.parametrize("kind", list(LAYERS))
def test_masked_weights_are_exactly_zero_in_training_and_evaluation(kind):
    """Input (channel) j is cut from every unit by the mask; with only that input active, the
    output must be exactly what a zero input gives, noise included (same random stream)."""
    make, weight_shape, x_shape, j = LAYERS[kind]
    torch.manual_seed(0)
    layer = make()
    mask = torch.ones(weight_shape)
    mask[:, j] = 0
    layer.set_weight_mask(mask)
    x = torch.zeros(x_shape)
    x[:, j] = 100.0
    for training in (True, False):
        layer.train(training)
        with torch.no_grad():
            torch.manual_seed(1)
            out = layer(x)
            torch.manual_seed(1)
            zero_input = layer(torch.zeros(x_shape))
        assert torch.equal(out, zero_input)
    effective = layer.masked(layer.point_weight())
    assert int((effective == 0).sum()) == int((mask == 0).sum())


def test_threshold_masks_remove_exactly_the_weights_with_log_alpha_at_least_3():
    layer = LinearSVD(4, 2, bias=False)
    log_alpha = torch.tensor([[-5.0, 2.9, 3.0, 3.1], [8.0, 0.0, 2.999, 7.0]])
    with torch.no_grad():
        layer.theta.fill_(1.0)  # float32: θ² + 1e-8 == 1, so log α == log σ² exactly
        layer.log_sigma2.copy_(log_alpha)
    net = nn.Sequential(layer)
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    assert torch.equal(threshold_masks(net)["0"], expected)
    assert torch.equal(threshold_masks(net, threshold=0.0)["0"], (log_alpha < 0).float())


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_group_log_alpha_at_least_3_removes_the_whole_input(kind):
    """A group variable with log α_z ≥ 3 removes every weight of its input neuron / channel,
    even weights whose own log α is small; other weights follow their own log α."""
    if kind == "linear":
        layer = LinearSVDGroup(3, 2, bias=False)
    else:
        layer = Conv2dSVDGroup(3, 2, 1, bias=False)
    with torch.no_grad():
        layer.theta.fill_(1.0)
        layer.log_sigma2.fill_(-4.0)
        layer.log_sigma2.view(2, 3)[0, 2] = 4.0  # one noisy weight of input 2
        layer.group_mu.fill_(1.0)
        layer.group_log_sigma2.copy_(torch.tensor([-4.0, 3.5, -4.0]))  # input 1 is noise
    mask = threshold_masks(nn.Sequential(layer))["0"].view(2, 3)
    assert torch.equal(mask, torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]))


def test_log_alpha_criterion_removes_the_highest_log_alpha_first_like_the_threshold():
    """Score −log α: pruning the fraction that the threshold rule removes gives its masks."""
    torch.manual_seed(0)
    net = nn.Sequential(LinearSVD(10, 8), nn.ReLU(), LinearSVDGroup(8, 4))
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.log_sigma2.copy_(torch.randn_like(m.log_sigma2) * 3 + 2 * m.theta.square().log())
        net[2].group_log_sigma2.copy_(torch.tensor([5.0, -6, -6, -6, -6, -6, -6, -6]))
    rule = threshold_masks(net)
    removed = sum(int((m == 0).sum()) for m in rule.values())
    assert 0 < removed < 80 + 32
    swept = masks_from_scores(log_alpha_scores(net), removed / (80 + 32))
    assert all(torch.equal(swept[n], rule[n]) for n in rule)


def test_log_alpha_rules_refuse_models_without_log_alpha():
    net = nn.Sequential(MaskedLinear(4, 2))
    with pytest.raises(UserError, match="log_alpha.*magnitude or random"):
        prune_model(net, "log_alpha", 0.5)
    with pytest.raises(UserError, match="Sparse VD"):
        threshold_masks(net)


def test_compression_counts_the_weights_the_model_computes_with():
    """|W| / |W ≠ 0| over what the layers use: a mask zero and a θ that is exactly zero both
    count as removed."""
    net = nn.Sequential(LinearSVD(4, 2), nn.ReLU(), LinearSVD(2, 2))
    mask = torch.ones(2, 4)
    mask[0] = 0
    net[0].set_weight_mask(mask)  # 4 of 8 removed
    with torch.no_grad():
        net[2].theta.fill_(1.0)
        net[2].theta[0, 0] = 0.0  # 1 of 4 is zero
    c = compression(net)
    assert c["prunable"] == 12 and c["nonzero"] == 7
    assert c["compression"] == pytest.approx(12 / 7)
    assert c["per_layer"] == pytest.approx({"0": 0.5, "2": 0.25})
    assert c["sparsity"] == pytest.approx(5 / 12)
    net[0].set_weight_mask(torch.zeros(2, 4))
    net[2].set_weight_mask(torch.zeros(2, 2))
    assert compression(net)["compression"] == math.inf


def test_apply_threshold_sets_the_masks_and_reports_them():
    torch.manual_seed(0)
    net = nn.Sequential(LinearSVD(6, 4))
    with torch.no_grad():
        net[0].theta.fill_(1.0)
        net[0].log_sigma2.copy_(torch.linspace(-2, 6, 24).view(4, 6))
    info = apply_threshold(net, 3.0)
    assert torch.equal(net[0].weight_mask, threshold_masks(net)["0"])
    assert info["threshold"] == 3.0
    assert info["nonzero"] == int((torch.linspace(-2, 6, 24) < 3).sum())
    assert sparsity(net)["removed"] == 24 - info["nonzero"]


# -- structured rebuild --------------------------------------------------------------------------

FACTORIES = {
    "masked": LayerFactory(linear=MaskedLinear, conv=MaskedConv2d),
    "bayes": LayerFactory(
        linear=lambda i, o: BayesLinear(i, o, GaussianPrior(1.0)),
        conv=None,
    ),
    "svd": LayerFactory(linear=LinearSVD, conv=Conv2dSVD),
    "svd_group": LayerFactory(linear=LinearSVDGroup, conv=Conv2dSVDGroup),
}


def _mlp_with_dead_units(factory: LayerFactory) -> MLP:
    """16 → 6 → 5 → 3 MLP (inputs 1×4×4) whose masks, by construction:
    * cut inputs 0–3 (no outgoing weight) and input 4 (only feeds hidden unit 5, which dies);
    * hidden-1 unit 0: no incoming weight, bias +0.7: a constant relu(0.7) folded forward;
    * hidden-1 unit 1: no incoming weight, bias −1: a constant 0;
    * hidden-1 unit 5: its only outgoing weight goes to hidden-2 unit 4, which has no outgoing
      weight, so both go (a fixed point, not just one pass);
    * hidden-2 unit 3: its only live input is cut, so it too is a constant folded forward."""
    torch.manual_seed(0)
    net = MLP(factory, 16, [6, 5], 3, dropout=0.5, input_dropout=0.2)
    l1, l2, l3 = (m for m in net.net if hasattr(m, "point_weight"))
    m1, m2, m3 = torch.ones(6, 16), torch.ones(5, 6), torch.ones(3, 5)
    m1[:, :5] = 0
    m1[5, 4] = 1
    m1[5, 5:] = 0
    m1[0] = m1[1] = 0
    m2[:, 5] = 0
    m2[4, 5] = 1
    m2[3] = 0
    m2[3, 0] = 1  # hidden-2 unit 3 reads only the constant hidden-1 unit 0
    m3[:, 4] = 0
    for layer, mask in zip((l1, l2, l3), (m1, m2, m3), strict=True):
        layer.set_weight_mask(mask)
    bias1 = l1.bias_mu if hasattr(l1, "bias_mu") else l1.bias
    with torch.no_grad():
        bias1[0], bias1[1] = 0.7, -1.0
    return net


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_shrunk_mlp_computes_what_the_masked_mlp_computes(kind):
    net = _mlp_with_dead_units(FACTORIES[kind])
    net.eval()
    small = shrink_mlp(net)
    x = torch.randn(32, 1, 4, 4)
    assert torch.allclose(small(x), net(x), atol=1e-5)
    # inputs 5..15 (11), hidden-1 units 2, 3, 4 (3), hidden-2 units 0, 1, 2 (3), 3 classes
    assert kept_widths(small) == [11, 3, 3, 3]
    assert count_parameters(small) < count_parameters(net)
    assert all(isinstance(m, nn.Linear) for m in small if count_parameters(m) > 0)


def _lenet_with_dead_filters(factory: LayerFactory) -> LeNet5:
    """LeNet-5 (conv 4, 6; fc 12) on 1×16×16 inputs whose masks cut: conv1 filter 0 entirely
    (bias +0.5: a constant map folded into conv2), conv1 filter 3's outgoing kernels (unused),
    conv2 filter 1 entirely (bias +0.3: constant features folded into fc1), conv2 filter 5's
    fc1 columns (unused), and fc1 unit 2's incoming weights (bias +0.2: folded into fc2)."""
    torch.manual_seed(0)
    net = LeNet5(factory, (1, 16, 16), 3, conv=(4, 6), fc=12)
    c1, c2 = (m for m in net.features if hasattr(m, "point_weight"))
    f1, _ = (m for m in net.classifier if hasattr(m, "point_weight"))
    m1, m2, mf = torch.ones(4, 1, 5, 5), torch.ones(6, 4, 5, 5), torch.ones(12, 6)
    m1[0] = 0
    m2[:, 3] = 0
    m2[1] = 0
    mf[:, 5] = 0
    mf[2] = 0
    c1.set_weight_mask(m1)
    c2.set_weight_mask(m2)
    f1.set_weight_mask(mf)  # 6 channels × 1×1 positions after two conv+pool blocks on 16×16
    with torch.no_grad():
        c1.bias[0], c2.bias[1], f1.bias[2] = 0.5, 0.3, 0.2
    return net


@pytest.mark.parametrize("kind", ["masked", "svd", "svd_group"])
def test_shrunk_lenet5_computes_what_the_masked_lenet5_computes(kind):
    net = _lenet_with_dead_filters(FACTORIES[kind])
    net.eval()
    small = shrink_lenet5(net)
    x = torch.randn(16, 1, 16, 16)
    assert torch.allclose(small(x), net(x), atol=1e-5)
    # conv1: filters 1, 2 (0 is constant, 3 unused); conv2: 0, 2, 3, 4; fc1: 11 of 12 units
    assert kept_widths(small) == [2, 4, 4, 11, 3]
    assert count_parameters(small) < count_parameters(net)


def test_shrinking_a_trained_and_thresholded_svd_network():
    """End to end on a few optimisation steps: threshold, then rebuild; the outputs agree."""
    torch.manual_seed(0)
    method = SparseVD("svd_group", input_groups=True, warmup_start=0, warmup_end=0)
    net = MLP(method.layer_factory(), 16, [12, 8], 3)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x, y = torch.randn(64, 16), torch.randint(0, 3, (64,))
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y) + method.loss_terms(net, StepInfo(0, 1, 1, 64))["kl"]
        loss.backward()
        opt.step()
    apply_threshold(net, 3.0)
    net.eval()
    small = shrink(net)
    assert torch.allclose(small(x), net(x), atol=1e-5)
    assert sum(kept_widths(small)[:-1]) < 16 + 12 + 8


# -- the method ----------------------------------------------------------------------------------

# The output-shape / finite-loss / exact-fraction / save-load contract of svd, ard and svd_group
# is the shared one in tests/test_methods_contract.py.

MODELS = {"mlp": {"name": "mlp", "hidden": [16, 8]}}


def _setup(method_name, model_name):
    method = build_method(compose_config([f"method={method_name}"]).method)
    spec = dict(MODELS[model_name], input_shape=[1, 28, 28], n_classes=10, dropout=method.dropout)
    torch.manual_seed(0)
    return method, build_model(spec, method.layer_factory())


def test_kl_warm_up_weight_by_hand():
    """rw = 0 for 0-based epochs < 5, then linear, per epoch, to 1 at epoch 20."""
    by_hand = {0: 0.0, 4: 0.0, 5: 0.0, 6: 1 / 15, 12: 7 / 15, 19: 14 / 15, 20: 1.0, 150: 1.0}
    for epoch, rw in by_hand.items():
        assert kl_warmup_weight(epoch, 5, 20) == pytest.approx(rw)
    assert [kl_warmup_weight(e, 3, 3) for e in (2, 3)] == [0.0, 1.0]


def test_kl_term_is_warm_up_times_the_summed_kl_over_n_train():
    method, model = _setup("svd", "mlp")
    layers = [m for m in model.modules() if isinstance(m, LinearSVD)]
    by_hand = sum(log_uniform_kl(m.log_alpha()).sum() for m in layers).item()
    n_train = 1234
    for epoch, rw in ((0, 0.0), (4, 0.0), (8, 3 / 15), (25, 1.0)):
        step = StepInfo(epoch, 3, 10, n_train)
        term = method.loss_terms(model, step)["kl"].item()
        assert term == pytest.approx(rw * by_hand / n_train, rel=1e-5, abs=1e-12)


@pytest.mark.parametrize(
    "option, value, match",
    [
        ("prior", "laplace", "unknown method.prior 'laplace'; valid: ard, log_uniform"),
        ("warmup_start", 30, "warmup_start and method.warmup_end"),
        ("input_groups", "yes", "input_groups must be true or false"),
    ],
)
def test_bad_options_are_refused_with_the_valid_ones(option, value, match):
    with pytest.raises(UserError, match=match):
        SparseVD("svd", **{option: value})
