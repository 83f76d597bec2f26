"""EM-MCMC with per-layer spike/slab decays (``layer_decays``): each layer's E-step uses its own
two Gaussian densities, the M-step switches to that layer's decays, the slab threshold on a
group's mean square moves as log(ε₀/ε₁)/(N(ε₀ − ε₁)), and the options are checked."""

from __future__ import annotations

import math

import pytest
import torch

from bbbprune.errors import UserError
from bbbprune.layers import MaskedConv2d, MaskedLinear, prunable_layers
from bbbprune.methods.emmcmc import EMMCMC
from bbbprune.methods.emmcmc_samplers import PreconditionedSGHMC
from bbbprune.nets.models import build_model

DECAYS = {"output": {"scale": 0.1}, "net.1": {"slab": 0.02, "spike": 0.8}}


def _mlp(method: EMMCMC, seed: int = 1):
    torch.manual_seed(seed)
    spec = {"name": "mlp", "hidden": [6, 5], "input_shape": [1, 2, 2], "n_classes": 3}
    return build_model(spec, method.layer_factory())


def test_decays_resolve_by_name_then_output_then_kind():
    method = EMMCMC(
        "emmcmc",
        epochs=4,
        slab_decay=0.05,
        spike_decay=0.5,
        layer_decays={**DECAYS, "linear": {"spike": 0.9}},
    )
    model = _mlp(method)
    assert list(prunable_layers(model)) == ["net.1", "net.3", "net.5"]
    assert method.layer_decay_pair(model, "net.1") == (0.02, 0.8)  # by name
    assert method.layer_decay_pair(model, "net.3") == (0.05, 0.9)  # by kind, slab left out
    slab, spike = method.layer_decay_pair(model, "net.5")  # the last layer: output
    assert slab == pytest.approx(0.005) and spike == pytest.approx(0.05)
    conv = torch.nn.Sequential(MaskedConv2d(1, 2, 3), torch.nn.Flatten(), MaskedLinear(2, 2))
    by_kind = EMMCMC("emmcmc", epochs=4, layer_decays={"conv": {"scale": 0.5}})
    assert by_kind.layer_decay_pair(conv, "0") == (1e-4, 2.5e-2)
    assert by_kind.layer_decay_pair(conv, "2") == (2e-4, 5e-2)  # unmatched: the method's pair


def test_e_step_uses_each_layers_own_densities_and_m_step_its_decays():
    """p_g from torch.distributions with layer l's σ₁²_l = 1/(N ε₁_l), σ₀²_l = 1/(N ε₀_l), against
    the method's E-step; then the M-step's weight decays are p ε₁_l + (1 − p) ε₀_l."""
    n_train, pi = 200, 0.4
    method = EMMCMC(
        "emmcmc", epochs=4, slab_decay=0.05, spike_decay=0.5, layer_decays=DECAYS, em_start=0
    )
    model = _mlp(method)
    layers = prunable_layers(model)
    with torch.no_grad():
        for layer in layers.values():
            layer.weight.mul_(torch.linspace(0.02, 4.0, layer.weight.shape[1]))
    method.inclusion_prior = {name: pi for name in layers}
    stats = method.e_step(model, n_train)
    pairs = {"net.1": (0.02, 0.8), "net.3": (0.05, 0.5), "net.5": (0.005, 0.05)}
    for name, layer in layers.items():
        slab_decay, spike_decay = pairs[name]
        slab = torch.distributions.Normal(0.0, math.sqrt(1 / (n_train * slab_decay)))
        spike = torch.distributions.Normal(0.0, math.sqrt(1 / (n_train * spike_decay)))
        w = layer.weight.detach()
        for j in range(w.shape[1]):
            log_in = math.log(pi) + slab.log_prob(w[:, j]).sum()
            log_out = math.log(1 - pi) + spike.log_prob(w[:, j]).sum()
            direct = torch.exp(log_in - torch.logaddexp(log_in, log_out))
            assert stats[name]["p"][j].item() == pytest.approx(direct.item(), rel=1e-4, abs=1e-7)
    opt = method.make_optimizer(model, lambda params: PreconditionedSGHMC(params, n_train=n_train))
    for name, layer in layers.items():  # before the first EM step: the layer's slab decay
        assert opt.state[layer.weight]["weight_decay"] == pytest.approx(pairs[name][0])
    method.inclusion_prior = {name: pi for name in layers}
    stats = method.e_step(model, n_train)
    method.on_epoch_end(model, opt, 0)
    for name, layer in layers.items():
        p = stats[name]["p"]
        want = p * pairs[name][0] + (1 - p) * pairs[name][1]
        got = opt.state[layer.weight]["weight_decay"][0]
        assert torch.allclose(got, want.to(got.dtype), rtol=1e-5)


def test_scaling_both_decays_moves_the_slab_threshold_as_derived():
    """With π = ½ the E-step's boundary on a group's mean square is
    r*² = log(ε₀/ε₁)/(N(ε₀ − ε₁)); a scale c divides it by c. Groups just inside/outside."""
    n_train = 1000
    for scale in (1.0, 0.25):
        method = EMMCMC("emmcmc", epochs=4, layer_decays={"linear": {"scale": scale}})
        model = torch.nn.Sequential(MaskedLinear(4, 8))
        slab, spike = 2e-4 * scale, 5e-2 * scale
        r2 = math.log(spike / slab) / (n_train * (spike - slab))
        assert r2 == pytest.approx(math.log(250) / (n_train * (5e-2 - 2e-4)) / scale)
        with torch.no_grad():  # every entry of column j has square r2 * (0.9, 0.99, 1.01, 1.1)
            model[0].weight.copy_(torch.tensor([0.9, 0.99, 1.01, 1.1]).mul(r2).sqrt().expand(8, 4))
        p = method.e_step(model, n_train)["0"]["p"]
        assert (p[:2] < 0.5).all() and (p[2:] > 0.5).all()


def test_layer_decay_options_are_checked():
    with pytest.raises(UserError, match="slab < spike"):
        EMMCMC("emmcmc", epochs=4, layer_decays={"conv": {"slab": 0.1}})
    with pytest.raises(UserError, match="takes slab, spike and scale"):
        EMMCMC("emmcmc", epochs=4, layer_decays={"conv": {"ratio": 2}})
