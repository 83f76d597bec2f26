"""Pruning: score functions, one masking function, exact fractions, validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bbbprune.errors import UserError
from bbbprune.layers import MaskedLinear
from bbbprune.pruning.criteria import magnitude_scores, prune_model, random_scores
from bbbprune.pruning.masking import apply_masks, masks_from_scores, sparsity


def test_global_mask_removes_the_lowest_scores_across_layers():
    scores = {"a": torch.tensor([[0.1, 0.9], [0.5, 0.3]]), "b": torch.tensor([0.2, 0.8, 0.05])}
    masks = masks_from_scores(scores, 3 / 7)  # the three lowest overall: 0.05, 0.1, 0.2
    assert masks["a"].tolist() == [[0.0, 1.0], [1.0, 1.0]]
    assert masks["b"].tolist() == [0.0, 1.0, 0.0]


def test_per_layer_mask_prunes_each_layer_separately():
    scores = {"a": torch.tensor([4.0, 3.0, 2.0, 1.0]), "b": torch.tensor([10.0, 20.0])}
    masks = masks_from_scores(scores, 0.5, scope="layer")
    assert masks["a"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert masks["b"].tolist() == [0.0, 1.0]


def test_ties_are_broken_by_position_so_the_count_is_exact():
    scores = {"a": torch.zeros(10)}
    assert masks_from_scores(scores, 0.3)["a"].tolist() == [0.0] * 3 + [1.0] * 7


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99])
@pytest.mark.parametrize("criterion", ["magnitude", "random"])
def test_pruned_fraction_is_exact(fraction, criterion):
    torch.manual_seed(0)
    net = nn.Sequential(MaskedLinear(30, 20), nn.ReLU(), MaskedLinear(20, 7))
    prune_model(net, criterion, fraction)
    total = 30 * 20 + 20 * 7
    s = sparsity(net)
    assert s["removed"] == round(fraction * total) and s["prunable"] == total
    x = torch.randn(3, 30)
    for layer in (net[0], net[2]):  # what the layer computes uses the masked weight
        effective = layer.masked(layer.weight)
        assert int((effective == 0).sum()) == int((layer.weight_mask == 0).sum())
    apply_masks(net, None)
    assert sparsity(net)["removed"] == 0
    assert net(x).shape == (3, 7)


def test_magnitude_pruning_keeps_the_largest_weights():
    layer = MaskedLinear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.3, -2.0, 0.01, -0.5]]))
    net = nn.Sequential(layer)
    prune_model(net, "magnitude", 0.5)
    assert layer.weight_mask.tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert net(torch.ones(1, 4)).item() == pytest.approx(-2.5)  # -2.0 + -0.5


def test_random_scores_are_reproducible_from_the_seed():
    net = nn.Sequential(MaskedLinear(8, 8))
    a = random_scores(net, torch.Generator().manual_seed(1))
    b = random_scores(net, torch.Generator().manual_seed(1))
    c = random_scores(net, torch.Generator().manual_seed(2))
    assert torch.equal(a["0"], b["0"]) and not torch.equal(a["0"], c["0"])
    assert set(magnitude_scores(net)) == {"0"}


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_fraction_outside_unit_interval_is_an_error(bad):
    with pytest.raises(UserError, match=r"must be in \[0, 1\)"):
        masks_from_scores({"a": torch.ones(3)}, bad)


def test_snr_needs_a_bayesian_model():
    with pytest.raises(UserError, match="needs a Bayesian model"):
        prune_model(nn.Sequential(MaskedLinear(3, 3)), "snr", 0.5)


def test_unknown_criterion_lists_the_valid_ones():
    with pytest.raises(UserError, match="valid: log_alpha, magnitude, pip, random, snr"):
        prune_model(nn.Sequential(MaskedLinear(3, 3)), "hessian", 0.5)


def test_lowest_k_mask_equals_the_first_k_of_a_stable_sort():
    """The selection that finds the k lowest scores removes exactly the weights a stable sort
    lists first, ties (many equal scores, as |w| of zeroed weights gives) broken by position."""
    from bbbprune.pruning.masking import _lowest_k_mask

    gen = torch.Generator().manual_seed(0)
    for scores in (
        torch.rand(1000, generator=gen),
        torch.randint(0, 5, (1000,), generator=gen).float(),  # heavy ties
        torch.cat([torch.zeros(300), torch.rand(700, generator=gen)]),
    ):
        for k in (0, 1, 299, 300, 301, 500, 999, 1000):
            expected = torch.ones_like(scores)
            expected[torch.argsort(scores, stable=True)[:k]] = 0.0
            assert torch.equal(_lowest_k_mask(scores, k), expected), k
