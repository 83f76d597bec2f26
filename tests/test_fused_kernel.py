"""The fused CPU kernel for BBB sampling: its draws are standard normal, and its weights, KL and
gradients equal autograd through the eager formulas evaluated at the same ε."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bbbprune.layers import BayesLinear, fused, sampling
from bbbprune.layers.priors import LOG_SQRT_2PI, GaussianPrior, ScaleMixturePrior

pytestmark = pytest.mark.skipif(not fused.available(), reason="no C compiler for the kernel")


def test_draws_are_standard_normal_and_depend_on_the_key():
    e = fused.normal((400_000,), key=12345).double()
    assert abs(e.mean().item()) < 5 / math.sqrt(len(e))
    assert e.var().item() == pytest.approx(1.0, abs=0.01)
    assert (e**4).mean().item() == pytest.approx(3.0, abs=0.05)  # Gaussian kurtosis
    # the fraction below a few quantiles matches Φ
    for z, phi in ((-1.0, 0.158655), (0.0, 0.5), (1.645, 0.95)):
        assert (e < z).double().mean().item() == pytest.approx(phi, abs=0.003)
    lag = torch.corrcoef(torch.stack([e[:-1], e[1:]]))[0, 1].item()
    assert abs(lag) < 0.01
    # the two halves of each 2048-element block are R·cos θ and R·sin θ of the same pairs:
    # independent standard normals, so neither correlated nor alike in magnitude
    blocks = e[: 195 * 2048].view(195, 2, 1024)
    cos_half, sin_half = blocks[:, 0].flatten(), blocks[:, 1].flatten()
    assert abs(torch.corrcoef(torch.stack([cos_half, sin_half]))[0, 1].item()) < 0.01
    assert abs(torch.corrcoef(torch.stack([cos_half.abs(), sin_half.abs()]))[0, 1].item()) < 0.01
    other = fused.normal((400_000,), key=12346).double()
    assert abs(torch.corrcoef(torch.stack([e, other]))[0, 1].item()) < 0.01
    assert torch.equal(fused.normal((10,), 7), fused.normal((10,), 7))


@pytest.mark.parametrize("prior", [ScaleMixturePrior(0.25, 1.0, math.exp(-6)), GaussianPrior(0.3)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", [(37, 53), (61, 71)])  # one block; three, the last odd-sized
def test_values_and_gradients_match_autograd_at_the_same_eps(prior, masked, shape):
    torch.manual_seed(0)
    mu = (torch.randn(shape) * 0.1).requires_grad_()
    rho = torch.randn(shape) - 4
    if shape[0] > 40:  # some rho > 0 (sigma > log 2): the blocks that take log(sigma) directly
        rho = rho + 3 * torch.randn(shape).clamp_min(0)
        assert (rho > 0).any()
    rho.requires_grad_()
    mask = (torch.rand(shape) > 0.3).float() if masked else None
    key = 99
    w, kl = fused.FusedSample.apply(mu, rho, mask, key, fused.prior_constants(prior))
    upstream = torch.randn(shape)
    (w * upstream).sum().add(0.37 * kl).backward()
    g_mu, g_rho = mu.grad.clone(), rho.grad.clone()
    mu.grad = rho.grad = None

    eps = fused.normal(shape, key)
    sigma = F.softplus(rho)
    w_ref = mu + sigma * eps
    kl_ref = -(sigma.log().sum() + 0.5 * eps.square().sum() + mu.numel() * LOG_SQRT_2PI)
    kl_ref = kl_ref - prior.log_prob(w_ref)
    w_out = w_ref if mask is None else w_ref * mask
    (w_out * upstream).sum().add(0.37 * kl_ref).backward()

    assert torch.allclose(w, w_out, atol=1e-6)
    assert kl.item() == pytest.approx(kl_ref.item(), rel=1e-5)
    assert torch.allclose(g_mu, mu.grad, rtol=1e-4, atol=1e-4 * mu.grad.abs().max().item())
    assert torch.allclose(g_rho, rho.grad, rtol=1e-4, atol=1e-4 * rho.grad.abs().max().item())


def test_sigma_is_softplus_to_float_precision():
    """w = μ + softplus(ρ)·ε with μ = 0 gives σ = w / ε; against softplus in float64 it holds
    to a few float32 ulps over ρ from −60 to 20, including ρ ≈ −5 where log(1 + e^ρ) computed
    as written loses five digits."""
    rho = torch.linspace(-60.0, 20.0, 20_001)
    key = 5
    mu = torch.zeros_like(rho)
    w, _ = fused.FusedSample.apply(mu, rho, None, key, fused.prior_constants(GaussianPrior(1.0)))
    eps = fused.normal(rho.shape, key)
    sigma = w.double() / eps.double()
    reference = F.softplus(rho.double())
    assert ((sigma - reference).abs() / reference).max().item() < 1e-6


def test_fused_and_eager_layers_sample_the_same_distribution():
    torch.manual_seed(0)
    prior = ScaleMixturePrior(0.5, 1.0, math.exp(-6))
    fast = BayesLinear(4, 3, prior, rho_init=-1.0, fused=True)
    slow = BayesLinear(4, 3, prior, rho_init=-1.0, fused=False)
    slow.load_state_dict(fast.state_dict())
    x = torch.eye(4)
    with torch.no_grad(), sampling(fast, True), sampling(slow, True):
        a = torch.stack([fast(x) for _ in range(5000)])
        b = torch.stack([slow(x) for _ in range(5000)])
        kl_a = torch.stack([(fast(x), fast.kl())[1] for _ in range(2000)])
        kl_b = torch.stack([(slow(x), slow.kl())[1] for _ in range(2000)])
    assert torch.allclose(a.mean(0), b.mean(0), atol=0.05)
    assert torch.allclose(a.std(0), b.std(0), rtol=0.06)
    se = (kl_a.std() + kl_b.std()) / math.sqrt(2000)
    assert abs(kl_a.mean() - kl_b.mean()) < 5 * se


def test_seeded_runs_draw_the_same_noise():
    prior = GaussianPrior(1.0)
    layer = BayesLinear(5, 2, prior, rho_init=0.0)
    x = torch.ones(1, 5)
    torch.manual_seed(3)
    with sampling(layer, True):
        first = [layer(x) for _ in range(3)]
    torch.manual_seed(3)
    with sampling(layer, True):
        second = [layer(x) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], first[1])


@pytest.mark.parametrize("prior", ["log_uniform", "ard"])
def test_sparse_vd_kl_and_its_gradient_match_autograd_of_eq_14(prior):
    """The fused Sparse VD KL equals the eager formula (Molchanov et al. 2017, Eq. 14; ARD's
    ½·log(1 + 1/α)) and so does its gradient, over log α inside and beyond the clip at ±8
    (where the gradient is 0) and over tiny θ."""
    from bbbprune.layers.sparse_vd import K1, K2, K3, KL_FUNCTIONS, clipped_log_alpha

    gen = torch.Generator().manual_seed(0)
    theta = torch.cat([torch.randn(5000, generator=gen) * 0.3, torch.tensor([1e-6, -1e-5, 0.0])])
    log_sigma2 = torch.empty_like(theta).uniform_(-20.0, 6.0, generator=gen)
    assert (clipped_log_alpha(log_sigma2, theta).abs() == 8).any()  # both regimes are covered

    t1, s1 = theta.clone().requires_grad_(), log_sigma2.clone().requires_grad_()
    fused_kl = fused.SparseVDKL.apply(t1, s1, prior == "ard", (K1, K2, K3))
    (3.0 * fused_kl).backward()
    t2, s2 = theta.clone().requires_grad_(), log_sigma2.clone().requires_grad_()
    eager_kl = KL_FUNCTIONS[prior](clipped_log_alpha(s2, t2)).sum()
    (3.0 * eager_kl).backward()

    assert fused_kl.item() == pytest.approx(eager_kl.item(), rel=1e-5)
    assert torch.allclose(t1.grad, t2.grad, rtol=1e-4, atol=1e-6)
    assert torch.allclose(s1.grad, s2.grad, rtol=1e-4, atol=1e-7)
    clipped = clipped_log_alpha(log_sigma2, theta).abs() == 8
    assert (s1.grad[clipped] == 0).all() and (s1.grad[~clipped] != 0).all()
