"""Bayes by Backprop layers: reparameterisation, pruning that really prunes, local
reparameterisation, KL scaling, and a conjugate Bayesian linear regression."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bbbprune.errors import UserError
from bbbprune.layers import BayesConv2d, BayesLinear, fused, kl_divergence, sampling
from bbbprune.layers.priors import GaussianPrior, ScaleMixturePrior
from bbbprune.methods import BayesByBackprop, StepInfo
from bbbprune.methods.bbb import blundell_kl_weight
from bbbprune.pruning.criteria import prune_model
from bbbprune.pruning.masking import sparsity


def _net(rho_init=-3.0):
    prior = ScaleMixturePrior(0.5, 1.0, math.exp(-6))
    return nn.Sequential(
        nn.Flatten(),
        BayesLinear(12, 16, prior, rho_init=rho_init),
        nn.ReLU(),
        BayesLinear(16, 4, prior, rho_init=rho_init),
    )


def test_sampled_weights_follow_the_reparameterisation():
    torch.manual_seed(0)
    layer = BayesLinear(3, 2, GaussianPrior(1.0), rho_init=0.5, bias=False)
    x = torch.eye(3)  # output column j = weight column j
    with sampling(layer, True):
        draws = torch.stack([layer(x).T for _ in range(20000)])
    sigma = F.softplus(torch.tensor(0.5)).item()
    assert torch.allclose(draws.mean(0), layer.weight_mu.detach(), atol=0.03)
    assert torch.allclose(draws.std(0), torch.full((2, 3), sigma), rtol=0.03)
    layer.eval()
    assert torch.equal(layer(x).T, layer.weight_mu.detach())  # evaluation: posterior mean


def _partial_mask(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(shape, generator=g) > 0.4).float()
    mask.view(shape[0], -1)[:, 2] = 0  # input 2 pruned from every unit
    return mask


@pytest.mark.parametrize("path", ["eager", "fused"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_pruned_weights_are_exactly_zero_in_sampled_and_mean_passes(path, kind):
    """At partial sparsity, every weight a sampled forward pass uses is 0 where the mask is 0 and
    a draw of N(μ, σ²) where it is 1. One-hot inputs without bias make the output the weights
    themselves: out[i] = W e_i (linear) or the kernel entry under the one-hot pixel (conv)."""
    if path == "fused" and not fused.available():
        pytest.skip("no C compiler for the kernel")
    torch.manual_seed(0)
    prior = GaussianPrior(1.0)
    fuse = path == "fused"
    if kind == "linear":
        layer = BayesLinear(8, 5, prior, bias=False, rho_init=0.5, fused=fuse)
        probe = torch.eye(8)
    else:
        layer = BayesConv2d(2, 3, 3, prior, bias=False, rho_init=0.5, fused=fuse)
        probe = torch.eye(18).reshape(18, 2, 3, 3)
    mask = _partial_mask(layer.weight_mu.shape)
    assert 0 < mask.mean() < 1
    layer.set_weight_mask(mask)
    flat_mask = mask.reshape(mask.shape[0], -1).T.bool()  # (inputs, units) like the output
    with sampling(layer, True), torch.no_grad():
        draws = torch.stack([layer(probe).reshape(len(probe), -1) for _ in range(4000)])
    assert torch.count_nonzero(draws[:, ~flat_mask]) == 0  # exactly zero, every draw
    kept = draws[:, flat_mask]
    assert torch.count_nonzero(kept) == kept.numel()
    mu = layer.weight_mu.detach().reshape(mask.shape[0], -1).T[flat_mask]
    sigma = F.softplus(torch.tensor(0.5)).item()
    assert torch.allclose(kept.mean(0), mu, atol=5 * sigma / math.sqrt(4000))
    assert torch.allclose(kept.std(0), torch.full_like(mu, sigma), rtol=0.1)
    # the draws the layer reports for the KL path are masked the same way
    with sampling(layer, True), torch.no_grad():
        w, _ = layer._weights()
    assert torch.count_nonzero(w[mask == 0]) == 0 and torch.count_nonzero(w[mask == 1]) > 0
    layer.eval()
    with torch.no_grad():
        expected = (layer.weight_mu * mask).reshape(mask.shape[0], -1).T
        assert torch.equal(layer(probe).reshape(len(probe), -1), expected)


def test_local_reparameterisation_uses_the_masked_weights_exactly():
    """Local reparameterisation (Kingma et al. 2015, Eq. 6) samples b ~ N(x(μ∘m)ᵀ + μ_b,
    x²(σ²∘m)ᵀ + σ_b²): with the same normal draws, the output equals that computation with the
    pruned weights, at partial sparsity; and an input feeding only pruned weights changes
    nothing."""
    torch.manual_seed(0)
    layer = BayesLinear(8, 5, GaussianPrior(1.0), rho_init=0.5, local_reparam=True)
    mask = _partial_mask(layer.weight_mu.shape)
    layer.set_weight_mask(mask)
    x = torch.randn(64, 8)
    with sampling(layer, True), torch.no_grad():
        torch.manual_seed(7)
        out = layer(x)
        x_moved = x.clone()
        x_moved[:, 2] = 100.0  # input 2 feeds only pruned weights
        torch.manual_seed(7)
        out_moved = layer(x_moved)
    torch.manual_seed(7)
    z = torch.randn(64, 5)
    mu, sigma2 = layer.weight_mu.detach() * mask, F.softplus(layer.weight_rho.detach()) ** 2
    mean = x @ mu.T + layer.bias_mu.detach()
    var = x.square() @ (sigma2 * mask).T + F.softplus(layer.bias_rho.detach()) ** 2
    torch.testing.assert_close(out, mean + var.sqrt() * z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_moved, out, atol=1e-5, rtol=1e-5)


def test_rho_zero_is_not_pruning():
    """The public-reproduction bug: ρ = 0 leaves σ = softplus(0) ≈ 0.69 of noise on 'pruned'
    weights, while our mask gives exactly zero."""
    torch.manual_seed(0)
    buggy = BayesLinear(4, 2, GaussianPrior(1.0), bias=False)
    with torch.no_grad():
        buggy.weight_mu.zero_()
        buggy.weight_rho.zero_()
    x = torch.eye(4)
    with sampling(buggy, True):
        assert buggy(x).abs().max() > 0.1
    ours = BayesLinear(4, 2, GaussianPrior(1.0), bias=False)
    ours.set_weight_mask(torch.zeros(2, 4))
    with sampling(ours, True):
        assert torch.count_nonzero(ours(x)) == 0


def test_pruning_changes_what_the_network_computes():
    """The other bug: pruning tensors the layer never reads. Masks must change the outputs."""
    torch.manual_seed(0)
    net = _net()
    x = torch.randn(64, 12)
    net.eval()
    before = net(x)
    prune_model(net, "snr", 0.9)
    after = net(x)
    assert sparsity(net)["sparsity"] == pytest.approx(0.9, abs=1 / (12 * 16 + 16 * 4))
    assert (before - after).abs().max() > 1e-3
    for layer in (net[1], net[3]):
        effective = layer.masked(layer.weight_mu)
        assert int((effective == 0).sum()) == int((layer.weight_mask == 0).sum())


def test_conv_pruned_kernels_are_zero():
    torch.manual_seed(0)
    conv = BayesConv2d(2, 3, 3, GaussianPrior(1.0), padding=1, bias=False, rho_init=0.0)
    conv.set_weight_mask(torch.zeros(3, 2, 3, 3))
    with sampling(conv, True):
        assert torch.count_nonzero(conv(torch.randn(2, 2, 5, 5))) == 0


# the conv case takes minutes on 2 cores (see docs/notes.md): it runs in make test-all
@pytest.mark.parametrize("layer_cls", ["linear", "conv"])
def test_local_reparameterisation_matches_sampled_weights(layer_cls):
    """Local reparameterisation samples pre-activations from N(x·μ, x²·σ²): the same mean and
    variance as sampling the weights (Monte Carlo over 20k draws)."""
    torch.manual_seed(0)
    prior = GaussianPrior(1.0)
    if layer_cls == "linear":
        a, b = (
            BayesLinear(5, 3, prior, rho_init=-1.0),
            BayesLinear(5, 3, prior, rho_init=-1.0, local_reparam=True),
        )
        x = torch.randn(1, 5).expand(20000, 5)
    else:
        a = BayesConv2d(1, 2, 3, prior, rho_init=-1.0)
        b = BayesConv2d(1, 2, 3, prior, rho_init=-1.0, local_reparam=True)
        x = torch.randn(1, 1, 4, 4).expand(20000, 1, 4, 4)
    b.load_state_dict(a.state_dict())
    with torch.no_grad(), sampling(a, True), sampling(b, True):
        ya = torch.stack([a(x[:1]) for _ in range(20000)]).squeeze(1)
        yb = b(x)
    stderr = (ya.std(0) / math.sqrt(len(ya))).max()
    assert torch.allclose(ya.mean(0), yb.mean(0), atol=float(6 * stderr))
    assert torch.allclose(ya.var(0), yb.var(0), rtol=0.06)


def test_kl_term_is_a_sum_divided_by_the_training_set_size():
    torch.manual_seed(0)
    method = BayesByBackprop(
        "bbb", {"kind": "gaussian", "neg_log_sigma": 0}, kl_estimator="closed_form", rho_init=-2.0
    )
    layer = method.layer_factory().linear(7, 5)
    net = nn.Sequential(layer)
    mu = torch.cat([layer.weight_mu.flatten(), layer.bias_mu]).detach()
    sigma = F.softplus(torch.cat([layer.weight_rho.flatten(), layer.bias_rho])).detach()
    by_hand = (-(sigma.log()) + (sigma**2 + mu**2) / 2 - 0.5).sum()  # KL(N(μ,σ²)‖N(0,1))
    n_train = 1234
    term = method.loss_terms(net, StepInfo(0, 1, 10, n_train))["kl"]
    assert term.item() == pytest.approx(by_hand.item() / n_train, rel=1e-5)
    assert kl_divergence(net).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_kl_scale_multiplies_the_complexity_cost_and_is_named_in_the_header():
    """``+method.kl_scale=c`` (a diagnosis of implementations that weighted the complexity cost
    differently) gives exactly c times the KL/N term of the same network; c = 1 is the ELBO and
    leaves the method's description (and so every existing record) unchanged."""
    from bbbprune.report.protocol import _kl_weight

    torch.manual_seed(0)
    prior = {"kind": "gaussian", "neg_log_sigma": 0}
    elbo = BayesByBackprop("bbb", prior, kl_estimator="closed_form")
    scaled = BayesByBackprop("bbb", prior, kl_estimator="closed_form", kl_scale=0.25)
    net = nn.Sequential(BayesLinear(3, 2, GaussianPrior(1.0), kl_estimator="closed_form"))
    step = StepInfo(0, 1, 10, 1000)
    full = elbo.loss_terms(net, step)["kl"].item()
    assert scaled.loss_terms(net, step)["kl"].item() == pytest.approx(0.25 * full, rel=1e-6)
    assert "kl_scale" not in elbo.describe()
    assert scaled.describe()["kl_scale"] == 0.25
    assert _kl_weight(scaled.describe()).startswith("0.25 × KL/N")
    with pytest.raises(UserError, match="kl_scale"):
        BayesByBackprop("bbb", prior, kl_estimator="closed_form", kl_scale=-1)


def test_blundell_minibatch_weights_sum_to_one():
    for m in (1, 3, 20, 469, 2000):
        weights = [blundell_kl_weight(i, m) for i in range(1, m + 1)]
        assert sum(weights) == pytest.approx(1.0, rel=1e-9)
        assert weights[0] == pytest.approx(2 ** (m - 1) / (2**m - 1) if m < 1000 else 0.5)


@pytest.mark.parametrize("local_reparam", [False, True])
def test_conjugate_linear_regression_recovers_the_exact_posterior(local_reparam):
    """y = X w + noise, noise N(0, s_n²) known, prior w ~ N(0, s_p² I). With orthogonal columns
    the exact posterior is factorised, so the mean-field optimum equals it:
    precision_j = ‖x_j‖²/s_n² + 1/s_p², mean_j = (x_jᵀ y / s_n²) / precision_j."""
    torch.manual_seed(0)
    n, d, s_n, s_p = 40, 3, 0.5, 1.0
    q, _ = torch.linalg.qr(torch.randn(n, d, dtype=torch.float64))
    X = (q * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)).float()
    w_true = torch.tensor([[1.0, -0.5, 0.25]])
    y = X @ w_true.T + s_n * torch.randn(n, 1)
    precision = (X.double() ** 2).sum(0) / s_n**2 + 1 / s_p**2
    post_mean = (X.double().T @ y.double()).squeeze() / s_n**2 / precision
    post_std = precision.rsqrt()

    layer = BayesLinear(
        d,
        1,
        GaussianPrior(s_p),
        bias=False,
        rho_init=-2.0,
        kl_estimator="closed_form",
        local_reparam=local_reparam,
    )
    opt = torch.optim.Adam(layer.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 if t < 2000 else 0.1)
    samples = 16
    xs = X.repeat(samples, 1)
    ys = y.repeat(samples, 1)
    for _ in range(3000):
        opt.zero_grad()
        if local_reparam:  # each repeated row gets its own activation noise
            pred = layer(xs)
        else:
            pred = torch.cat([layer(X) for _ in range(samples)])
        nll = ((pred - ys) ** 2).sum() / (2 * s_n**2) / samples
        (nll + layer.kl()).backward()
        opt.step()
        sched.step()
    mu = layer.weight_mu.detach().double().squeeze()
    sd = layer.weight_sigma().detach().double().squeeze()
    assert torch.allclose(mu, post_mean, atol=0.02), (mu, post_mean)
    assert torch.allclose(sd, post_std, rtol=0.1), (sd, post_std)
