"""Spike-and-slab VI (method=ssvi): KL terms against closed forms, PIPs on a problem with one
informative and one pure-noise feature, the structured rebuild, the simulated data and the
Gaussian likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import compose_config
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from bbbprune.data.simulated import generate, importances, link, signal_std
from bbbprune.deploy.structured import removed_units, shrink
from bbbprune.errors import UserError
from bbbprune.layers import sampling
from bbbprune.layers.likelihoods import Gaussian, build_likelihood
from bbbprune.layers.spike_slab import SpikeSlabConv2d, SpikeSlabLinear, bernoulli_kl, gaussian_kl
from bbbprune.methods import SpikeSlabVI, StepInfo, build_method
from bbbprune.nets.models import MLP, build_model
from bbbprune.pruning.criteria import pip_scores, prune_model
from bbbprune.pruning.masking import apply_masks, sparsity
from bbbprune.pruning.thresholds import pip_masks


def test_bernoulli_kl_matches_torch_distributions():
    logit = torch.tensor([-9.0, -2.0, 0.0, 0.3, 4.0, 12.0], dtype=torch.float64)
    for lam in (0.2, 0.5, 0.9):
        expected = kl_divergence(Bernoulli(logits=logit), Bernoulli(probs=torch.tensor(lam)))
        assert torch.allclose(bernoulli_kl(logit, lam), expected, atol=1e-7)  # torch clamps p
    # by hand at γ = 1/2, λ = 0.2: ½ log(0.5/0.2) + ½ log(0.5/0.8)
    by_hand = 0.5 * math.log(2.5) + 0.5 * math.log(0.625)
    assert bernoulli_kl(torch.zeros(1), 0.2).item() == pytest.approx(by_hand, rel=1e-6)


def test_gaussian_kl_matches_torch_distributions():
    mu = torch.tensor([0.0, 0.5, -2.0, 3.0], dtype=torch.float64)
    sigma = torch.tensor([1.0, 0.1, 2.0, 0.01], dtype=torch.float64)
    for s in (1.0, 0.3):
        expected = kl_divergence(Normal(mu, sigma), Normal(0.0, s))
        assert torch.allclose(gaussian_kl(mu, sigma, s), expected, atol=1e-10)
    assert gaussian_kl(torch.zeros(1), torch.ones(1), 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_layer_kl_is_bernoulli_plus_inclusion_weighted_gaussian():
    torch.manual_seed(0)
    layer = SpikeSlabLinear(3, 2, prior_inclusion=0.3, slab_std=0.7)
    with torch.no_grad():
        layer.inclusion_logit.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    gamma = torch.sigmoid(layer.inclusion_logit)
    expected = 0.0
    for j in range(3):
        g = gamma[j].item()
        expected += g * math.log(g / 0.3) + (1 - g) * math.log((1 - g) / 0.7)
        for i in range(2):
            m, s = layer.weight_mu[i, j].item(), layer.weight_sigma()[i, j].item()
            expected += g * (math.log(0.7 / s) + (s * s + m * m) / (2 * 0.49) - 0.5)
    assert layer.kl().item() == pytest.approx(expected, rel=1e-5)


def test_relaxed_indicators_approach_bernoulli_and_hard_draws_have_mean_pip():
    torch.manual_seed(0)
    layer = SpikeSlabLinear(2, 1, temperature=0.05)
    with torch.no_grad():
        layer.inclusion_logit.copy_(torch.tensor([math.log(0.2 / 0.8), math.log(0.7 / 0.3)]))
    relaxed = layer.draw_indicators(40000, relaxed=True)
    hard = layer.draw_indicators(40000, relaxed=False)
    assert torch.allclose(relaxed.mean(0), torch.tensor([0.2, 0.7]), atol=0.015)
    assert ((relaxed < 0.05) | (relaxed > 0.95)).float().mean() > 0.9  # nearly binary at τ=0.05
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(hard.mean(0), torch.tensor([0.2, 0.7]), atol=0.015)


def test_mean_pass_uses_posterior_mean_weights_and_sampled_pass_varies():
    torch.manual_seed(0)
    layer = SpikeSlabLinear(4, 3)
    x = torch.randn(5, 4)
    layer.eval()
    expected = x @ (layer.weight_mu * layer.pip().view(1, -1)).T + layer.bias
    assert torch.allclose(layer(x), expected, atol=1e-6)
    with sampling(layer, True):
        assert not torch.allclose(layer(x), layer(x))


def _fit_two_feature_problem(seed=0, steps=400):
    """y = 3 x_0 + noise with a second, pure-noise feature; a 2-8-1 SS-VI net."""
    torch.manual_seed(seed)
    n = 500
    x = torch.randn(n, 2)
    y = 3 * x[:, 0] + 0.5 * torch.randn(n)
    cfg = compose_config(["method=ssvi", "method.pip_lr_scale=1.0"])
    method = build_method(cfg.method)
    spec = {"name": "mlp", "hidden": [8], "input_shape": [2], "n_classes": 1}
    model = build_model(spec, method.layer_factory())
    likelihood = Gaussian(0.5)
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    first = model.net[1]
    start = first.pip().detach().clone()
    for _ in range(steps):
        opt.zero_grad()
        loss = likelihood.nll(model(x), y) + method.loss_terms(model, StepInfo(0, 1, 1, n))["kl"]
        loss.backward()
        opt.step()
    return start, first.pip().detach()


def test_pips_move_to_one_for_a_driving_feature_and_to_zero_for_noise():
    start, pip = _fit_two_feature_problem()
    assert start[0] == pytest.approx(0.9) and start[1] == pytest.approx(0.9)
    assert pip[0] > 0.95  # drives the target: towards 1
    assert pip[1] < 0.1  # pure noise: towards 0 (below the prior inclusion 0.2)


def _random_pip_mlp():
    torch.manual_seed(1)
    method = build_method(compose_config(["method=ssvi"]).method)
    model = MLP(method.layer_factory(), 12, [10, 8], 3)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "inclusion_logit"):
                m.inclusion_logit.copy_(torch.randn_like(m.inclusion_logit) * 2)
    return method, model


def test_native_masks_prune_nodes_with_low_pip_and_rebuilt_net_matches():
    method, model = _random_pip_mlp()
    masks = method.native_masks(model)
    apply_masks(model, masks)
    model.eval()
    layers = [m for m in model.modules() if hasattr(m, "inclusion_logit")]
    for layer, mask in zip(layers, masks.values(), strict=True):
        keep = layer.pip() >= 0.5
        assert torch.equal(mask.bool(), keep.view(1, -1).expand_as(mask))
    small = shrink(model)
    x = torch.randn(7, 12)
    assert torch.allclose(small(x), model(x), atol=1e-5)
    widths = removed_units(model)["kept_widths"]
    assert widths[0] == int((layers[0].pip() >= 0.5).sum())  # features read = selected features
    assert widths[-1] == 3


def test_pip_scores_rank_whole_columns_and_prune_the_exact_fraction():
    _, model = _random_pip_mlp()
    scores = pip_scores(model)
    first = model.net[1]
    assert torch.equal(scores["net.1"][0], first.pip().detach())
    assert torch.equal(scores["net.1"][3], first.pip().detach())  # same score down a column
    prune_model(model, "pip", 0.5)
    s = sparsity(model)
    assert s["removed"] == round(0.5 * s["prunable"])
    # every fully removed column has a lower PIP than every fully kept one
    pip, mask = first.pip().detach(), first.weight_mask
    gone, kept = mask.sum(0) == 0, mask.sum(0) == mask.shape[0]
    if gone.any() and kept.any():
        assert pip[gone].max() <= pip[kept].min()


def test_conv_layer_indicators_act_on_input_channels():
    torch.manual_seed(0)
    conv = SpikeSlabConv2d(3, 4, 3)
    with torch.no_grad():
        conv.inclusion_logit.copy_(torch.tensor([5.0, -5.0, 5.0]))
    masks = pip_masks(nn.Sequential(conv))
    mask = masks["0"]
    assert mask.shape == conv.weight_mu.shape
    assert mask[:, 1].sum() == 0 and mask[:, [0, 2]].all()
    conv.train()
    assert conv(torch.randn(2, 3, 8, 8)).shape == (2, 4, 6, 6)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(UserError, match="prior_inclusion"):
        SpikeSlabVI("ssvi", prior_inclusion=1.5)
    with pytest.raises(UserError, match="threshold"):
        SpikeSlabVI("ssvi", threshold=0)


def test_optimizer_gives_the_inclusion_logits_a_scaled_learning_rate():
    method = build_method(compose_config(["method=ssvi", "method.pip_lr_scale=10"]).method)
    model = MLP(method.layer_factory(), 4, [3], 2)
    opt = method.make_optimizer(model, _adam(1e-3))
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([1e-3, 1e-2])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def _adam(lr):
    import functools

    return functools.partial(torch.optim.Adam, lr=lr)


# -- simulated data ----------------------------------------------------------------------------


def test_simulated_data_are_deterministic_and_have_the_stated_design():
    x1, y1 = generate(30, 5, 2.0, 4000, seed=3)
    x2, y2 = generate(30, 5, 2.0, 4000, seed=3)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    x3, _ = generate(30, 5, 2.0, 4000, seed=4)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (4000, 30) and y1.shape == (4000,)
    assert x1.min() >= -1 and x1.max() <= 1
    # var(y) = α² + 1 (signal normalised to sd 1, unit noise)
    assert y1.var() == pytest.approx(5.0, rel=0.08)
    # noise features are independent of y; relevant ones are not
    psi = importances(5, 0.5)
    noise = y1 - 2.0 * (link(x1[:, :5]) @ psi) / signal_std(psi)
    assert noise.std() == pytest.approx(1.0, rel=0.05)
    assert np.all(np.abs([np.corrcoef(x1[:, j], y1)[0, 1] for j in range(5, 30)]) < 0.06)


def test_link_and_importances_by_hand():
    t = np.array([0.0, 0.25, -0.5])
    expected = [1.0, math.exp(0.25) - 0.5 + 1.0, math.exp(0.5) + 1.0 + 0.0]
    assert np.allclose(link(t), expected, atol=1e-12)
    assert np.allclose(importances(3, 0.5), [0.5, 0.75, 1.0])


def _simulated_cfg(tmp_path, *overrides):
    """A smoke config on dataset=simulated (the image-dataset keys of smoke_overrides left out)."""
    return compose_config(
        [
            "scale=smoke",
            "device=cpu",
            f"paths.runs={tmp_path / 'runs'}",
            "train.progress=false",
            "model.hidden=[8,4]",
            "train.batch_size=32",
            "dataset=simulated",
            *overrides,
        ]
    )


def test_simulated_dataset_loads_with_a_gaussian_likelihood(tmp_path):
    from bbbprune.data.tensors import load_tensors

    cfg = _simulated_cfg(tmp_path, "dataset.D=7", "dataset.n_train=50")
    data = load_tensors(cfg.dataset)
    assert data.x_train.shape == (50, 7) and data.n_classes == 1
    assert data.y_train.dtype == torch.float32
    assert isinstance(data.likelihood, Gaussian) and data.likelihood.noise_std == 1.0


def test_gaussian_likelihood_against_closed_form():
    lik = build_likelihood({"likelihood": "gaussian", "noise_std": 2.0})
    f, y = torch.tensor([[0.0], [1.0]]), torch.tensor([1.0, 1.0])
    by_hand = -0.5 * (
        Normal(0.0, 2.0).log_prob(torch.tensor(1.0)) + Normal(1.0, 2.0).log_prob(torch.tensor(1.0))
    )
    assert lik.nll(f, y).item() == pytest.approx(by_hand.item(), rel=1e-6)
    with pytest.raises(UserError, match="likelihood"):
        build_likelihood({"likelihood": "poisson"})


def test_ssvi_regression_end_to_end(tmp_path):
    from bbbprune.evaluation.records import RECORDS
    from bbbprune.run.loop import train
    from bbbprune.storage import read_json

    cfg = _simulated_cfg(
        tmp_path,
        "method=ssvi",
        "dataset.D=6",
        "dataset.n_train=64",
        "prune.fractions=[0.0,0.5]",
    )
    run_dir = train(cfg, log=lambda *_: None)
    metrics = read_json(run_dir / "metrics.json")
    assert set(metrics["test"]["mean"]) >= {"mse", "rmse", "nll", "error"}
    assert metrics["test"]["mean"]["error"] == pytest.approx(metrics["test"]["mean"]["mse"])
    native = read_json(run_dir / RECORDS / "native_-1.0000_global_mean.json")
    assert native["criterion"] == "native" and native["kept_widths"][-1] == 1


def test_node_sweep_masks_keep_the_best_hidden_neurons_and_no_input_is_touched():
    from bbbprune.evaluation.node_sweep import hidden_kept
    from bbbprune.pruning.nodes import node_masks, node_scores

    _, model = _random_pip_mlp()
    masks = node_masks(model, 0.5)
    assert masks["net.1"].all()  # input features are left alone
    scores = node_scores(model)[0]
    for name, width in (("net.3", 10), ("net.5", 8)):
        kept_cols = masks[name][0].bool()
        assert int(kept_cols.sum()) == round(0.5 * width)
        assert scores[name][kept_cols].min() >= scores[name][~kept_cols].max()
    apply_masks(model, masks)
    kept, total = hidden_kept(model)
    assert total == 18 and kept <= 5 + 4
