"""SS-VI: the conditional prediction of a pruned network (the posterior mean of the
submodel its mask selects), the straight-through indicators and the temperature / KL schedules."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_config

from bbbprune.deploy.structured import shrink
from bbbprune.errors import UserError
from bbbprune.layers.spike_slab import SpikeSlabLinear
from bbbprune.methods import SpikeSlabVI, StepInfo, build_method
from bbbprune.nets.models import MLP
from bbbprune.pruning.masking import apply_masks


def _mlp_with_pips(seed=1):
    torch.manual_seed(seed)
    method = build_method(compose_config(["method=ssvi"]).method)
    model = MLP(method.layer_factory(), 12, [10, 8], 3)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "inclusion_logit"):
                m.inclusion_logit.copy_(torch.randn_like(m.inclusion_logit) * 2)
    return method, model


def _by_hand(model, x, weight_of):
    """The MLP's forward pass written out (linear, relu, ..., linear) with weights weight_of(l)."""
    layers = [m for m in model.modules() if hasattr(m, "inclusion_logit")]
    h = x
    for i, layer in enumerate(layers):
        h = h @ weight_of(layer).T + layer.bias
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h


def test_conditional_prediction_is_the_submodel_posterior_mean_and_shrinks_exactly():
    method, model = _mlp_with_pips()
    x = torch.randn(9, 12)
    # unpruned: every node in, weights μ (not γ μ)
    full = method.predict_outputs(model, x, "conditional")[0]
    assert torch.allclose(full, _by_hand(model, x, lambda m: m.weight_mu), atol=1e-5)
    apply_masks(model, method.native_masks(model))
    # median-probability model: E[W_ij | z_j = 1{γ_j >= 1/2}] = 1{γ_j >= 1/2} μ_ij
    cond = method.predict_outputs(model, x, "conditional")[0]
    expected = _by_hand(model, x, lambda m: m.weight_mu * (m.pip() >= 0.5).float().view(1, -1))
    assert torch.allclose(cond, expected, atol=1e-5)
    # the mean mode still uses γ μ on the kept nodes, and the flag is reset afterwards
    mean = method.predict_outputs(model, x, "mean")[0]
    kept_gamma = lambda m: m.weight_mu * (m.pip() * (m.pip() >= 0.5)).view(1, -1)  # noqa: E731
    assert torch.allclose(mean, _by_hand(model, x, kept_gamma), atol=1e-5)
    # the rebuilt smaller network of the conditional state gives the same outputs
    layers = [m for m in model.modules() if hasattr(m, "inclusion_logit")]
    for layer in layers:
        layer.given_mask = True
    model.eval()
    small = shrink(model)
    assert torch.allclose(small(x), cond, atol=1e-5)
    log_probs = method.predict_log_probs(model, x, "conditional")
    assert torch.allclose(log_probs, torch.log_softmax(cond, -1), atol=1e-5)


def test_straight_through_indicators_are_bernoulli_forward_and_relaxed_backward():
    torch.manual_seed(0)
    layer = SpikeSlabLinear(2, 1, temperature=0.5, straight_through=True)
    with torch.no_grad():
        layer.inclusion_logit.copy_(torch.tensor([math.log(0.2 / 0.8), math.log(0.7 / 0.3)]))
    z = layer.draw_indicators(40000, relaxed=True)
    assert set(z.unique().tolist()) <= {0.0, 1.0}  # exact 0/1 in the forward pass
    assert torch.allclose(z.mean(0), torch.tensor([0.2, 0.7]), atol=0.015)  # Bernoulli(γ)
    z.sum().backward()
    # d z̃ / d logit = z̃ (1 − z̃) / τ > 0: the gradient of the relaxation reaches the logits
    assert (layer.inclusion_logit.grad > 0).all()


def test_temperature_anneals_geometrically_and_kl_warms_up_linearly():
    method = SpikeSlabVI(
        "ssvi", temperature=0.5, temperature_final=0.05, anneal_epochs=4, kl_warmup_epochs=2
    )
    assert [method.temperature_at(e) for e in (0, 2, 4, 9)] == pytest.approx(
        [0.5, math.sqrt(0.5 * 0.05), 0.05, 0.05]
    )
    assert [method.kl_weight(e) for e in (0, 1, 2, 5)] == [0.0, 0.5, 1.0, 1.0]
    model = MLP(method.layer_factory(), 3, [4], 2)
    step = StepInfo(epoch=1, index=1, n_batches=1, n_train=10)
    kl = method.loss_terms(model, step)["kl"]
    total = sum(m.kl() for m in model.modules() if hasattr(m, "inclusion_logit"))
    assert kl.item() == pytest.approx(0.5 * total.item() / 10, rel=1e-6)
    assert all(
        m.temperature == pytest.approx(method.temperature_at(1))
        for m in model.modules()
        if hasattr(m, "inclusion_logit")
    )
    plain = SpikeSlabVI("ssvi", temperature=0.5)  # defaults: no schedule
    assert plain.temperature_at(7) == 0.5 and plain.kl_weight(0) == 1.0
    with pytest.raises(UserError, match="temperature_final"):
        SpikeSlabVI("ssvi", temperature_final=0.0)
    with pytest.raises(UserError, match="anneal_epochs"):
        SpikeSlabVI("ssvi", anneal_epochs=-1)


def test_without_input_indicators_the_first_layer_is_a_plain_gaussian_slab():
    from bbbprune.layers.spike_slab import gaussian_kl

    method = SpikeSlabVI("ssvi", prior_inclusion=0.1, select_inputs=False)
    model = MLP(method.layer_factory(), 5, [4], 2)
    first, second = [m for m in model.modules() if hasattr(m, "inclusion_logit")]
    assert not first.node_indicators and second.node_indicators
    assert torch.equal(first.pip(), torch.ones(5))
    assert torch.equal(first.draw_indicators(3, relaxed=True), torch.ones(3, 5))
    # KL = the slab KL of every weight (z = 1 surely: no Bernoulli term)
    expected = gaussian_kl(first.weight_mu, first.weight_sigma(), 1.0).sum()
    assert first.kl().item() == pytest.approx(expected.item(), rel=1e-6)
    # the native rule keeps every input and can still drop hidden neurons
    with torch.no_grad():
        second.inclusion_logit.copy_(torch.tensor([3.0, -3.0, 3.0, -3.0]))
    masks = method.native_masks(model)
    assert masks["net.1"].all()
    assert torch.equal(masks["net.3"][0], torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert not any(p is first.inclusion_logit for p in model.parameters())
