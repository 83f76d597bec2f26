"""EM-MCMC (Ke & Fan 2022): the preconditioned SGHMC sampler against a Gaussian target, the E-step
against the two Gaussian densities, permanent group removal, snapshots and resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import compose_config  # noqa: F401
from hydra.utils import instantiate

import bbbprune.run.loop as train_mod
from bbbprune.data.tensors import load_tensors
from bbbprune.errors import UserError
from bbbprune.layers import MaskedConv2d, MaskedLinear, prunable_layers
from bbbprune.methods import StepInfo, build_method
from bbbprune.methods.emmcmc import EMMCMC, snapshot_epochs
from bbbprune.methods.emmcmc_groups import expand_groups, group_axis, group_sum
from bbbprune.methods.emmcmc_samplers import PreconditionedSGHMC, cyclic_cosine
from bbbprune.nets.models import build_model
from bbbprune.run.epoch import run_epoch
from bbbprune.run.identity import run_directory
from bbbprune.run.loop import train
from bbbprune.storage import load_checkpoint

MU = torch.tensor([1.0, -2.0])
COV = torch.tensor([[1.0, 0.8], [0.8, 2.0]])


def _sample_gaussian(temperature: float, chains: int = 1000, steps: int = 2000, **kw):
    """Run independent chains (the rows of one parameter: the sampler is entry-wise) on
    U(θ) = ½ (θ − μ)ᵀ Σ⁻¹ (θ − μ) with N = 1, so the target is N(μ, T Σ)."""
    torch.manual_seed(0)
    precision = torch.linalg.inv(COV)
    theta = torch.nn.Parameter(torch.zeros(chains, 2))
    opt = PreconditionedSGHMC([theta], lr=1e-2, temperature=temperature, n_train=1, **kw)
    kept = []
    for k in range(steps):
        theta.grad = (theta.detach() - MU) @ precision
        opt.step()
        if k >= steps // 2 and k % 10 == 0:
            kept.append(theta.detach().clone())
    return torch.cat(kept)


@pytest.mark.parametrize(
    "temperature,power",
    [
        pytest.param(1.0, 0.5, marks=pytest.mark.slow),
        (0.5, 0.5),
        pytest.param(1.0, 0.0, marks=pytest.mark.slow),
    ],
)
def test_sampler_recovers_mean_and_covariance_of_a_correlated_gaussian(temperature, power):
    """power 0.5: the adaptive (Adam-like) preconditioner; power 0: plain SGHMC (P = I)."""
    s = _sample_gaussian(temperature, power=power)
    assert torch.allclose(s.mean(0), MU, atol=0.05)
    assert torch.allclose(torch.cov(s.T), temperature * COV, rtol=0.08, atol=0.04)


def test_zero_temperature_is_an_optimizer():
    s = _sample_gaussian(0.0, chains=10, steps=3000)
    assert torch.allclose(s[-10:], MU.expand(10, 2), atol=1e-3)


def test_cyclic_cosine_schedule():
    """½ η₀ (cos(π (k mod K/M)/(K/M)) + 1): peak at each cycle start, half-way at a quarter of
    the cycle... checked at hand-computed points (K = 100, M = 4: cycles of 25 steps)."""
    assert cyclic_cosine(2.0, 0, 100, 4) == pytest.approx(2.0)
    assert cyclic_cosine(2.0, 25, 100, 4) == pytest.approx(2.0)  # restart
    assert cyclic_cosine(2.0, 12.5, 100, 4) == pytest.approx(1.0)
    assert cyclic_cosine(2.0, 24, 100, 4) == pytest.approx(math.cos(math.pi * 24 / 25) + 1)
    assert cyclic_cosine(2.0, 7, None, 4) == 2.0  # no K: constant


def test_group_axis_is_input_columns_for_linear_and_filters_for_conv():
    lin, conv = MaskedLinear(5, 3), MaskedConv2d(2, 4, 3)
    assert group_axis(lin.weight) == 1 and group_axis(conv.weight) == 0
    assert torch.allclose(group_sum(lin.weight), lin.weight.sum(0))
    assert torch.allclose(group_sum(conv.weight), conv.weight.sum((1, 2, 3)))
    v = torch.arange(4.0)
    assert torch.equal(expand_groups(v, conv.weight)[2], torch.full((2, 3, 3), 2.0))


def _method(**kw) -> EMMCMC:
    return EMMCMC("emmcmc", epochs=kw.pop("epochs", 4), **kw)


def test_e_step_matches_the_two_gaussian_densities_and_the_prior():
    """p_g = π N(w_g; 0, σ₁²I) / (π N(w_g; 0, σ₁²I) + (1 − π) N(w_g; 0, σ₀²I)), computed from
    torch.distributions, against the method's closed-form log-odds (some entries masked)."""
    n_train, pi = 200, 0.3
    method = _method(slab_decay=0.05, spike_decay=0.5)
    torch.manual_seed(1)
    model = build_model(
        {"name": "mlp", "hidden": [6], "input_shape": [1, 2, 2], "n_classes": 3},
        method.layer_factory(),
    )
    layers = prunable_layers(model)
    first = layers["net.1"]
    with torch.no_grad():
        first.weight.mul_(torch.linspace(0.05, 3.0, 4))  # groups from spike-like to slab-like
    mask = torch.ones_like(first.weight)
    mask[0, 2] = mask[4, 2] = 0.0
    first.set_weight_mask(mask)
    method.inclusion_prior = {name: pi for name in layers}
    stats = method.e_step(model, n_train)
    slab = torch.distributions.Normal(0.0, math.sqrt(1 / (n_train * 0.05)))
    spike = torch.distributions.Normal(0.0, math.sqrt(1 / (n_train * 0.5)))
    for name, layer in layers.items():
        w = layer.weight.detach()
        live = torch.ones_like(w) if layer.weight_mask is None else layer.weight_mask
        for j in range(w.shape[1]):
            entries = w[:, j][live[:, j] > 0]
            log_in = math.log(pi) + slab.log_prob(entries).sum()
            log_out = math.log(1 - pi) + spike.log_prob(entries).sum()
            direct = torch.exp(log_in - torch.logaddexp(log_in, log_out))
            assert stats[name]["p"][j].item() == pytest.approx(direct.item(), rel=1e-4, abs=1e-7)
    p = stats["net.1"]["p"]
    assert p[0] < 0.5 < p[-1]  # the sweep spans both components


def test_options_are_checked():
    with pytest.raises(UserError, match="never prunes"):
        _method(epochs=10, em_start=10)
    with pytest.raises(UserError, match="slab < spike"):
        _method(slab_decay=1e-2, spike_decay=1e-3)
    assert snapshot_epochs(10, 4) == [1, 4, 6, 9]
    assert snapshot_epochs(12, 4) == [2, 5, 8, 11]
    assert snapshot_epochs(1, 4) == [0]


def test_removed_groups_stay_exactly_zero(smoke_cfg):
    """Drive the trainer's epoch loop with an EM step that removes groups early; every group
    removed at some epoch has zero mask and zero parameter at every later epoch, and hidden units
    whose outgoing column goes lose their incoming row too."""
    cfg = smoke_cfg(
        "method=emmcmc",
        "train.epochs=6",
        "method.cycles=2",
        "method.em_start=1",
        "method.spike_decay=0.5",
        "method.prune_threshold=50",
    )
    torch.manual_seed(0)
    data = load_tensors(cfg.dataset, torch.device("cpu"), log=lambda *_: None)
    method = build_method(cfg.method)
    spec = {"name": "mlp", "hidden": [32, 16], "input_shape": [1, 28, 28], "n_classes": 10}
    model = build_model(spec, method.layer_factory())
    opt = method.make_optimizer(model, instantiate(cfg.method.optimizer))
    shuffle = torch.Generator().manual_seed(1)
    layers = prunable_layers(model)
    removed: dict[str, torch.Tensor] = {}
    counts = []
    for epoch in range(6):
        run_epoch(model, method, opt, data, 32, shuffle, epoch)
        method.on_epoch_end(model, opt, epoch)
        for name, zeros in removed.items():  # removed before: still masked, still exactly zero
            layer = layers[name]
            assert (layer.weight_mask[zeros] == 0).all()
            assert (layer.weight.detach()[zeros] == 0).all()
        removed = {n: m.weight_mask == 0 for n, m in layers.items() if m.weight_mask is not None}
        counts.append(sum(int(z.sum()) for z in removed.values()))
    assert counts[0] == 0 and counts[-1] > 0  # nothing before the EM start, then removals
    assert counts == sorted(counts)
    second = layers["net.3"]  # input columns of layer 2 = hidden units of layer 1
    gone_units = (second.weight_mask == 0).all(0)
    if gone_units.any():
        assert (layers["net.1"].weight_mask[gone_units] == 0).all()
    assert method.native_masks(model)["net.3"].equal(second.weight_mask)


def test_ensemble_is_the_average_predictive_of_the_snapshots():
    method = _method(epochs=4, cycles=2, em_start=0)
    torch.manual_seed(0)
    spec = {"name": "mlp", "hidden": [8], "input_shape": [1, 4, 4], "n_classes": 3}
    model = build_model(spec, method.layer_factory())
    opt = method.make_optimizer(model, lambda params: PreconditionedSGHMC(params, n_train=10))
    x = torch.rand(7, 1, 4, 4)
    probs = []
    for epoch in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
        method.on_epoch_end(model, opt, epoch)
        if epoch in (1, 3):
            probs.append(torch.softmax(model(x), -1))
    assert len(method.snapshots) == 2
    ens = method.predict_log_probs(model, x, "ensemble").exp()
    assert torch.allclose(ens, (probs[0] + probs[1]) / 2, atol=1e-6)
    fresh = _method(epochs=4, cycles=2, em_start=0)
    fresh.load_state_dict(method.state_dict())
    assert torch.allclose(fresh.predict_log_probs(model, x, "ensemble").exp(), ens)


def test_resume_gives_identical_numbers(smoke_cfg, tmp_path, monkeypatch):
    """Interrupt after epoch 3 of 4 (EM active from epoch 1, removals under way), resume, and
    compare history, test metrics of both prediction modes and the native record."""
    over = [
        "method=emmcmc",
        "train.epochs=4",
        "method.cycles=2",
        "method.em_start=1",
        "method.spike_decay=0.5",
        "method.prune_threshold=50",
    ]
    full_dir = train(smoke_cfg(*over, f"paths.runs={tmp_path / 'full'}"), log=lambda *_: None)
    real_epoch = train_mod.run_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    cut = smoke_cfg(*over, f"paths.runs={tmp_path / 'cut'}")
    monkeypatch.setattr(train_mod, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cut, log=lambda *_: None)
    monkeypatch.setattr(train_mod, "run_epoch", real_epoch)
    assert load_checkpoint(run_directory(cut) / "checkpoint.pt")["epoch"] == 3
    cut_dir = train(
        smoke_cfg(*over, f"paths.runs={tmp_path / 'cut'}", "train.resume=true"),
        log=lambda *_: None,
    )
    full = json.loads((full_dir / "metrics.json").read_text())
    resumed = json.loads((cut_dir / "metrics.json").read_text())

    def strip(m):
        return [{k: v for k, v in h.items() if k != "wall_time_s"} for h in m["history"]]

    assert strip(resumed) == strip(full)
    assert resumed["test"] == full["test"] and set(full["test"]) == {"mean"}
    assert any(h.get("em_removed_groups", 0) > 0 for h in full["history"])
    native = "records/native_-1.0000_global_ensemble.json"
    a = json.loads((full_dir / native).read_text())
    b = json.loads((cut_dir / native).read_text())
    assert a["achieved_sparsity"] == b["achieved_sparsity"] > 0
    assert a["accuracy"] == b["accuracy"] and a["kept_widths"] == b["kept_widths"]


def test_step_info_sets_the_schedule():
    method = _method(epochs=3, cycles=1)
    model = torch.nn.Sequential(MaskedLinear(2, 2))
    opt = method.make_optimizer(model, lambda params: PreconditionedSGHMC(params, lr=1.0))
    method.loss_terms(model, StepInfo(0, 1, 5, 40))
    assert opt.param_groups[0]["n_train"] == 40 and opt.param_groups[0]["total_steps"] == 15
