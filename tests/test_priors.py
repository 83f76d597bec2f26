"""Priors and KL terms against closed forms and torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from bbbprune.errors import UserError
from bbbprune.layers import BayesLinear
from bbbprune.layers.priors import GaussianPrior, ScaleMixturePrior, build_prior


def test_gaussian_log_prob_matches_torch():
    w = torch.randn(50, dtype=torch.float64) * 0.7
    prior = GaussianPrior(0.5)
    assert prior.log_prob(w).item() == pytest.approx(
        Normal(0, 0.5).log_prob(w).sum().item(), rel=1e-7
    )


def test_scale_mixture_log_prob_is_the_mixture_density():
    w = torch.tensor([0.0, 1e-3, -0.05, 0.4, 3.0], dtype=torch.float64)
    pi, s1, s2 = 0.25, 1.0, math.exp(-6)
    prior = ScaleMixturePrior(pi, s1, s2)
    direct = torch.log(
        pi * Normal(0, s1).log_prob(w).exp() + (1 - pi) * Normal(0, s2).log_prob(w).exp()
    )
    assert prior.log_prob(w).item() == pytest.approx(direct.sum().item(), rel=1e-6)


def test_scale_mixture_is_stable_far_in_the_tails():
    prior = ScaleMixturePrior(0.5, 1.0, math.exp(-8))
    w = torch.tensor([10.0])  # the spike component underflows to exp(-1e8)
    expected = math.log(0.5) + Normal(0, 1.0).log_prob(w).item()
    assert prior.log_prob(w).item() == pytest.approx(expected, rel=1e-6)


def test_closed_form_kl_matches_torch():
    mu = torch.randn(30, dtype=torch.float64)
    sigma = torch.rand(30, dtype=torch.float64) + 0.1
    prior = GaussianPrior(0.8)
    expected = kl_divergence(Normal(mu, sigma), Normal(0.0, 0.8)).sum()
    assert prior.kl_closed_form(mu, sigma).item() == pytest.approx(expected.item(), rel=1e-6)


def test_mc_kl_averages_to_the_closed_form():
    """The Monte Carlo estimate log q(w) − log p(w) at w ~ q is unbiased for KL(q‖p)."""
    torch.manual_seed(0)
    prior = GaussianPrior(1.0)
    mc = BayesLinear(20, 10, prior, rho_init=-1.0, kl_estimator="mc")
    closed = BayesLinear(20, 10, prior, rho_init=-1.0, kl_estimator="closed_form")
    closed.load_state_dict(mc.state_dict())
    x = torch.randn(1, 20)
    with torch.no_grad():
        estimates = []
        for _ in range(4000):
            mc.train()(x)
            estimates.append(mc.kl())
        estimates = torch.stack(estimates)
    exact = closed.kl().item()
    stderr = estimates.std().item() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - exact) < 4 * stderr
    assert exact > 0


def test_build_prior_from_negative_log_sigmas():
    p = build_prior({"kind": "scale_mixture", "pi": 0.5, "neg_log_sigma1": 0, "neg_log_sigma2": 6})
    assert (p.pi, p.sigma1, p.sigma2) == (0.5, 1.0, pytest.approx(math.exp(-6)))
    with pytest.raises(UserError, match="valid: gaussian, scale_mixture"):
        build_prior({"kind": "laplace"})
    with pytest.raises(UserError, match="pi must be in"):
        build_prior({"kind": "scale_mixture", "pi": 1.5, "neg_log_sigma1": 0, "neg_log_sigma2": 6})


def test_closed_form_needs_a_gaussian_prior():
    with pytest.raises(UserError, match="closed_form needs a Gaussian prior"):
        BayesLinear(2, 2, ScaleMixturePrior(0.5, 1, 0.01), kl_estimator="closed_form")
