"""Node pruning at chosen fractions of hidden neurons, for any method: error against neurons kept
(the comparison of Saha, Liu & Liang 2024 between node-pruning methods).

Every hidden neuron is scored by the node criterion of the layer it feeds
(bbbprune.pruning.nodes); in every hidden layer the lowest-scoring neurons are removed (the same kept fraction per layer);
input features are left alone. Only layers of an MLP are handled.
"""

from __future__ import annotations

from torch import nn

from ..deploy.structured import removed_units
from ..layers import prunable_layers
from ..pruning.masking import apply_masks
from ..pruning.nodes import node_masks, node_scores
from .predictive import method_metrics

KEEP_FRACTIONS = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


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
