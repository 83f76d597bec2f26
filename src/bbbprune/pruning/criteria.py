"""Pruning: criteria are small score functions (low score = removed first); one function turns
scores into masks, globally (default) or per layer; one function applies them.

Prunable parameters are the weights of linear and conv layers; biases are never pruned.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError, check_choice
from ..layers import prunable_layers


def _layers_having(model: nn.Module, attribute: str, criterion: str, what: str) -> dict:
    """The prunable layers, if every one has ``attribute``; else the criterion's one-line error."""
    layers = prunable_layers(model)
    missing = [n for n, m in layers.items() if not hasattr(m, attribute)]
    if missing:
        raise UserError(
            f"criterion {criterion!r} needs {what}; {missing[0]} has none: use magnitude or random"
        )
    return layers


def magnitude_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """|w| for deterministic layers, |μ| for Bayesian ones (Han et al. 2015)."""
    return {n: m.point_weight().detach().abs() for n, m in prunable_layers(model).items()}


def snr_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """Signal-to-noise ratio |μ|/σ with σ = softplus(ρ) (Blundell et al. 2015, Sec. 5.1)."""
    layers = _layers_having(
        model, "weight_sigma", "snr", "a Bayesian model (layers with a posterior σ)"
    )
    return {n: (m.weight_mu.detach().abs() / m.weight_sigma().detach()) for n, m in layers.items()}


def random_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """Uniform random scores: a random subset of weights is removed."""
    return {
        n: torch.rand(m.point_weight().shape, generator=generator).to(m.point_weight().device)
        for n, m in prunable_layers(model).items()
    }


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


def pip_scores(model: nn.Module, generator=None) -> dict[str, torch.Tensor]:
    """The posterior inclusion probability γ_j of each weight's input node (spike-and-slab
    layers, Saha et al. 2024): the nodes least likely to be included go first, whole columns."""
    layers = _layers_having(
        model, "pip", "pip", "a spike-and-slab model (layers with inclusion probabilities)"
    )
    return {
        n: m._node_view(m.pip().detach()).expand_as(m.weight_mu).clone() for n, m in layers.items()
    }


SCORE_FUNCTIONS = {
    "magnitude": magnitude_scores,
    "snr": snr_scores,
    "random": random_scores,
    "log_alpha": log_alpha_scores,
    "pip": pip_scores,
}
SCOPES = ("global", "layer")


def check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"prune fraction must be in [0, 1), got {fraction}")
    return fraction


def _lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """0 at the k lowest entries of a flat score vector (ties broken by position), 1 elsewhere."""
    mask = torch.ones_like(scores)
    if k > 0:
        idx = torch.argsort(scores, stable=True)[:k]
        mask[idx] = 0.0
    return mask


def masks_from_scores(
    scores: dict[str, torch.Tensor], fraction: float, scope: str = "global"
) -> dict[str, torch.Tensor]:
    """Remove round(fraction · n) weights with the lowest scores: over all layers together
    (``global``) or in every layer separately (``layer``). Returns 0/1 masks."""
    fraction = check_fraction(fraction)
    check_choice("prune.scope", scope, SCOPES)
    if scope == "layer":
        return {
            n: _lowest_k_mask(s.flatten(), round(fraction * s.numel())).view_as(s)
            for n, s in scores.items()
        }
    flat = torch.cat([s.flatten().float().cpu() for s in scores.values()])
    mask = _lowest_k_mask(flat, round(fraction * flat.numel()))
    out, start = {}, 0
    for n, s in scores.items():
        out[n] = mask[start : start + s.numel()].view_as(s).to(s.device)
        start += s.numel()
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor] | None) -> None:
    """Set (or with None, clear) the weight masks the layers multiply into every forward pass."""
    layers = prunable_layers(model)
    for name, layer in layers.items():
        layer.set_weight_mask(None if masks is None else masks[name])


def prune_model(
    model: nn.Module, criterion: str, fraction: float, scope: str = "global", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Score, mask and apply in one call; returns the masks."""
    check_choice("prune.criterion", criterion, SCORE_FUNCTIONS)
    generator = torch.Generator().manual_seed(int(seed))
    scores = SCORE_FUNCTIONS[criterion](model, generator)
    masks = masks_from_scores(scores, fraction, scope)
    apply_masks(model, masks)
    return masks


def sparsity(model: nn.Module) -> dict:
    """Fraction of prunable weights that are masked, overall and per layer."""
    per_layer, zeros, total = {}, 0, 0
    for name, layer in prunable_layers(model).items():
        n = layer.point_weight().numel()
        z = 0 if layer.weight_mask is None else int((layer.weight_mask == 0).sum())
        per_layer[name] = z / n
        zeros, total = zeros + z, total + n
    return {
        "sparsity": zeros / max(total, 1),
        "prunable": total,
        "removed": zeros,
        "per_layer": per_layer,
    }
