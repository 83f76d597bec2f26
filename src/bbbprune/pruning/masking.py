"""One masking function for every criterion: scores to 0/1 masks, globally (default) or per
layer, and the masks set on the model; the sparsity they reach.

Prunable parameters are the weights of linear and conv layers; biases are never pruned.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError, check_choice
from ..layers import prunable_layers

SCOPES = ("global", "layer")


def check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"prune fraction must be in [0, 1), got {fraction}")
    return fraction


def _lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """0 at the k lowest entries of a flat score vector (ties broken by position), 1 elsewhere:
    the first k of a stable sort. Found by selection (the k-th value, then the first of its ties
    by position), linear rather than a sort of the whole vector; with NaN scores, by the sort."""
    mask = torch.ones_like(scores)
    if k <= 0:
        return mask
    if k >= scores.numel() or torch.isnan(scores).any():
        mask[torch.argsort(scores, stable=True)[:k]] = 0.0
        return mask
    kth = torch.kthvalue(scores, k).values
    below = scores < kth
    ties = torch.nonzero(scores == kth).flatten()[: k - int(below.sum())]
    mask[below] = 0.0
    mask[ties] = 0.0
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


def masks_matching(
    scores: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per-layer-ratio masking: in every layer remove as many weights as the ``reference`` mask
    removes there, the ones with the lowest ``scores`` (the "same layer-wise ratios" controls
    of Blalock et al. 2020, Sec. 7). Separates which layer loses weights from which weight."""
    out = {}
    for n, s in scores.items():
        removed = int((reference[n] == 0).sum())
        out[n] = _lowest_k_mask(s.flatten(), removed).view_as(s).to(s.device)
    return out
