"""Node pruning at chosen fractions of hidden neurons, for any method: error against neurons kept
(the comparison of Saha, Liu & Liang 2024 between node-pruning methods).

A hidden neuron j of layer l is the input node j of layer l + 1; removing it zeroes column j of
that layer's weight (its outgoing weights), and bbbprune.deploy.structured then drops its incoming
weights too. Every hidden neuron gets a score from the layer it feeds (``node_scores``):

  * spike-and-slab layers: the posterior inclusion probability γ_j;
  * Sparse VD group layers: −log α_z,j of the neuron's group variable;
  * Bayes-by-Backprop layers: the mean signal-to-noise ratio |μ|/σ of its outgoing weights;
  * other layers: the L2 norm of its outgoing weights.

In every hidden layer the lowest-scoring neurons are removed (the same kept fraction per layer);
input features are left alone. Only layers of an MLP are handled.
"""

from __future__ import annotations

import torch
from torch import nn

from ..deploy.structured import removed_units
from ..errors import UserError
from ..layers import prunable_layers
from ..nets.models import MLP
from ..pruning.criteria import apply_masks
from .predictive import method_metrics

KEEP_FRACTIONS = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


def column_scores(layer: nn.Module) -> tuple[torch.Tensor, str]:
    """One score per input node of ``layer`` (high = keep) and the name of the score."""
    with torch.no_grad():
        if hasattr(layer, "pip"):
            return layer.pip(), "PIP"
        if hasattr(layer, "group_log_alpha"):
            return -layer.group_log_alpha(), "−group log α"
        if hasattr(layer, "weight_sigma"):
            return (layer.weight_mu.abs() / layer.weight_sigma()).mean(0), "mean SNR μ/σ"
        return layer.point_weight().norm(dim=0), "‖w‖ of outgoing weights"


def node_scores(model: nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """Scores of the hidden neurons, by the name of the layer they feed (every layer but the
    first of an MLP)."""
    if not isinstance(model, MLP):
        raise UserError(f"the node sweep needs an MLP, not {type(model).__name__}")
    layers = list(prunable_layers(model).items())[1:]
    scores = {name: column_scores(layer) for name, layer in layers}
    return {n: s for n, (s, _) in scores.items()}, next(iter(scores.values()))[1]


def node_masks(model: nn.Module, keep: float) -> dict[str, torch.Tensor]:
    """Weight masks that keep, in every hidden layer, the round(keep · width) best-scored
    neurons (ties by position); the first layer keeps every weight. Per layer rather than one
    global ranking, because scores need not be comparable across layers (one layer could lose
    every neuron and cut the network)."""
    if not 0.0 < keep <= 1.0:
        raise UserError(f"node keep fraction must be in (0, 1], got {keep}")
    scores, _ = node_scores(model)
    masks = {}
    for name, layer in prunable_layers(model).items():
        w = layer.point_weight()
        if name not in scores:
            masks[name] = torch.ones_like(w)
            continue
        s = scores[name].flatten().float()
        kept = torch.zeros_like(s, dtype=torch.bool)
        kept[torch.argsort(s, descending=True, stable=True)[: round(keep * s.numel())]] = True
        masks[name] = kept.to(w.dtype).view(1, -1).expand_as(w).clone()
    return masks


def hidden_kept(model: nn.Module) -> tuple[int, int]:
    """Hidden neurons left by the structured rebuild of the (masked) model, and the total."""
    widths = removed_units(model)["kept_widths"]
    total = sum(w.shape[0] for w in list(_weights(model))[:-1])
    return sum(widths[1:-1]), total


def _weights(model):
    return (layer.point_weight() for layer in prunable_layers(model).values())


def node_sweep(method, model: nn.Module, data, fractions=KEEP_FRACTIONS) -> dict:
    """Test error (mean prediction) of a trained model with a fraction of its hidden neurons kept
    (``data``: the run's TensorData); returns {score, rows: [{keep, hidden_kept, hidden_total,
    kept_widths, error}]}. The model's masks are lifted afterwards."""
    _, score_name = node_scores(model)
    rows = []
    for keep in fractions:
        apply_masks(model, node_masks(model, keep))
        kept, total = hidden_kept(model)
        result = method_metrics(method, model, data.x_test, data.y_test, "mean", data.likelihood)
        rows.append(
            {
                "keep": keep,
                "hidden_kept": kept,
                "hidden_total": total,
                "kept_widths": removed_units(model)["kept_widths"],
                "error": result["error"],
            }
        )
    apply_masks(model, None)
    return {"score": score_name, "rows": rows}
