"""The pruning registry (bbbprune.pruning.registry): every registered criterion works for a
method that lists it, every method lists only registered criteria, and node criteria are chosen
by layer family."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_config

from bbbprune.methods import build_method
from bbbprune.nets.models import build_model
from bbbprune.pruning import registry
from bbbprune.pruning.criteria import prune_model
from bbbprune.pruning.masking import apply_masks, sparsity
from bbbprune.pruning.nodes import column_scores

METHOD_CONFIGS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "method").glob("*.yaml")
)
SPEC = {"name": "mlp", "hidden": [12, 8], "input_shape": [1, 6, 6], "n_classes": 3}


def _model(method_name: str):
    method = build_method(compose_config([f"method={method_name}"]).method)
    torch.manual_seed(0)
    return method, build_model(dict(SPEC, dropout=method.dropout), method.layer_factory())


@pytest.mark.parametrize("method_name", METHOD_CONFIGS)
def test_every_method_lists_registered_criteria_only(method_name):
    method, _ = _model(method_name)
    assert set(method.criteria) <= set(registry.WEIGHT_CRITERIA)


@pytest.mark.parametrize("criterion", sorted(registry.WEIGHT_CRITERIA))
def test_every_weight_criterion_prunes_the_exact_fraction(criterion):
    """For the first method that lists it: one score per weight, and round(f·n) of the n
    prunable weights removed (global scope), counted from the masks."""
    users = [m for m in METHOD_CONFIGS if criterion in _model(m)[0].criteria]
    assert users, f"no method lists criterion {criterion}"
    _, model = _model(users[0])
    scores = registry.WEIGHT_CRITERIA[criterion](model, torch.Generator().manual_seed(0))
    weights = {n: m.point_weight() for n, m in model.named_modules() if n in scores}
    assert {n: s.shape for n, s in scores.items()} == {n: w.shape for n, w in weights.items()}
    n = sum(w.numel() for w in weights.values())
    masks = prune_model(model, criterion, 0.6)
    assert sum(int((m == 0).sum()) for m in masks.values()) == round(0.6 * n)
    assert sparsity(model)["removed"] == round(0.6 * n)


@pytest.mark.parametrize("rule", sorted(registry.THRESHOLD_RULES))
def test_every_threshold_rule_gives_weight_shaped_binary_masks(rule):
    users = [m for m in METHOD_CONFIGS if rule in _model(m)[0].criteria]
    assert users, f"no method lists a criterion named like threshold rule {rule}"
    _, model = _model(users[0])
    masks = registry.THRESHOLD_RULES[rule](model, 0.5)
    for name, layer in model.named_modules():
        if name in masks:
            assert masks[name].shape == layer.point_weight().shape
            assert set(masks[name].unique().tolist()) <= {0.0, 1.0}
    apply_masks(model, masks)
    assert sparsity(model)["removed"] == sum(int((m == 0).sum()) for m in masks.values())


@pytest.mark.parametrize(
    ("method_name", "score"),
    [
        ("sgd", "‖w‖ of outgoing weights"),
        ("bbb", "mean SNR μ/σ"),
        ("svd", "‖w‖ of outgoing weights"),
        ("svd_group", "−group log α"),
        ("ssvi", "PIP"),
    ],
)
def test_node_criteria_follow_the_layer_family(method_name, score):
    """The most specific registered family wins (a Sparse VD group layer is also a prunable
    layer, but is scored by its group log α); one score per input node."""
    _, model = _model(method_name)
    layers = [m for m in model.modules() if hasattr(m, "set_weight_mask")]
    for layer in layers[1:]:
        values, name = column_scores(layer)
        assert name == score
        assert values.shape == (layer.point_weight().shape[1],)
