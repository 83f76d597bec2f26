"""Node criteria: one score per input node of a layer (high = keep), by layer family, and the
masks that keep a fraction of the hidden neurons of an MLP (Saha, Liu & Liang 2024 compare
node-pruning methods this way).

A hidden neuron j of layer l is the input node j of layer l + 1; removing it zeroes column j of
that layer's weight (its outgoing weights), and the structured rebuild (bbbprune.deploy) then
drops its incoming weights too. Every hidden neuron is scored by the layer it feeds:

  * spike-and-slab layers: the posterior inclusion probability γ_j;
  * Sparse VD group layers: −log α_z,j of the neuron's group variable;
  * Bayes-by-Backprop layers: the mean signal-to-noise ratio |μ|/σ of its outgoing weights;
  * other prunable layers: the L2 norm of its outgoing weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..layers import BayesConv2d, BayesLinear, prunable_layers
from ..layers.masked import PrunableMixin
from ..layers.sparse_vd import Conv2dSVDGroup, LinearSVDGroup
from ..layers.spike_slab import SpikeSlabLayer
from ..nets.models import MLP
from .registry import node_criterion, node_criterion_for


@node_criterion(SpikeSlabLayer, "PIP")
def pip_node_scores(layer: SpikeSlabLayer) -> torch.Tensor:
    return layer.pip()


@node_criterion(LinearSVDGroup, "−group log α")
@node_criterion(Conv2dSVDGroup, "−group log α")
def group_log_alpha_node_scores(layer) -> torch.Tensor:
    return -layer.group_log_alpha()


@node_criterion(BayesLinear, "mean SNR μ/σ")
@node_criterion(BayesConv2d, "mean SNR μ/σ")
def snr_node_scores(layer) -> torch.Tensor:
    return (layer.weight_mu.abs() / layer.weight_sigma()).mean(0)


@node_criterion(PrunableMixin, "‖w‖ of outgoing weights")
def norm_node_scores(layer) -> torch.Tensor:
    return layer.point_weight().norm(dim=0)


def column_scores(layer: nn.Module) -> tuple[torch.Tensor, str]:
    """One score per input node of ``layer`` (high = keep) and the name of the score."""
    name, scores = node_criterion_for(layer)
    with torch.no_grad():
        return scores(layer), name


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
