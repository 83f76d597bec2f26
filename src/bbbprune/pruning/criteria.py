"""Weight criteria: small score functions, low score removed first (registered in
bbbprune.pruning.registry); ``prune_model`` scores, masks (bbbprune.pruning.masking) and applies.

Prunable parameters are the weights of linear and conv layers; biases are never pruned.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError, check_choice
from ..layers import prunable_layers
from .masking import apply_masks, masks_from_scores
from .registry import WEIGHT_CRITERIA, weight_criterion


def _layers_having(model: nn.Module, attribute: str, criterion: str, what: str) -> dict:
    """The prunable layers, if every one has ``attribute``; else the criterion's one-line error."""
    layers = prunable_layers(model)
    missing = [n for n, m in layers.items() if not hasattr(m, attribute)]
    if missing:
        raise UserError(
            f"criterion {criterion!r} needs {what}; {missing[0]} has none: use magnitude or random"
        )
    return layers


@weight_criterion("magnitude")
def magnitude_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """|w| for deterministic layers, |μ| for Bayesian ones (Han et al. 2015)."""
    return {n: m.point_weight().detach().abs() for n, m in prunable_layers(model).items()}


@weight_criterion("snr")
def snr_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """Signal-to-noise ratio |μ|/σ with σ = softplus(ρ) (Blundell et al. 2015, Sec. 5.1)."""
    layers = _layers_having(
        model, "weight_sigma", "snr", "a Bayesian model (layers with a posterior σ)"
    )
    return {n: (m.weight_mu.detach().abs() / m.weight_sigma().detach()) for n, m in layers.items()}


@weight_criterion("random")
def random_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """Uniform random scores: a random subset of weights is removed."""
    return {
        n: torch.rand(m.point_weight().shape, generator=generator).to(m.point_weight().device)
        for n, m in prunable_layers(model).items()
    }


@weight_criterion("log_alpha")
def log_alpha_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """−log α, so the weights with the largest dropout rate α = σ²/θ² go first (Molchanov et
    al. 2017; their fixed rule, log α ≥ 3, is bbbprune.pruning.thresholds.threshold_masks).
    For layers with input-group variables log α is the larger of the weight's and its group's."""
    layers = _layers_having(
        model,
        "effective_log_alpha",
        "log_alpha",
        "a Sparse VD model (layers with a dropout rate log α)",
    )
    return {n: -m.effective_log_alpha().detach() for n, m in layers.items()}


@weight_criterion("pip")
def pip_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """The posterior inclusion probability γ_j of each weight's input node (spike-and-slab
    layers, Saha et al. 2024): the nodes least likely to be included go first, whole columns."""
    layers = _layers_having(
        model, "pip", "pip", "a spike-and-slab model (layers with inclusion probabilities)"
    )
    return {
        n: m._node_view(m.pip().detach()).expand_as(m.weight_mu).clone() for n, m in layers.items()
    }


def prune_model(
    model: nn.Module, criterion: str, fraction: float, scope: str = "global", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Score, mask and apply in one call; returns the masks."""
    check_choice("prune.criterion", criterion, WEIGHT_CRITERIA)
    generator = torch.Generator().manual_seed(int(seed))
    scores = WEIGHT_CRITERIA[criterion](model, generator)
    masks = masks_from_scores(scores, fraction, scope)
    apply_masks(model, masks)
    return masks
