"""Controls at matched sparsity for a criterion (Blalock et al. 2020, "What is the state of
neural network pruning?", Sec. 7): the same number of weights removed by a criterion that
knows nothing of the posterior, either over all layers together (``global``) or in every layer
as many as the reference mask removes there (``matched``). With a Bayesian criterion (|μ|/σ,
log α, inclusion probability) as the reference, the four controls separate "which layer"
(matched vs global) from "which weight" (the Bayesian score vs |w| or chance).

Each control is registered in bbbprune.pruning.registry.CONTROLS as (base criterion, scope);
its masks come from the one masking module (bbbprune.pruning.masking).
"""

from __future__ import annotations

import torch
from torch import nn

from .masking import masks_from_scores, masks_matching
from .registry import CONTROLS, WEIGHT_CRITERIA, control

MATCHED = "matched"  # the scope of a control that copies the reference mask's per-layer counts

control("random_global", "random", "global")
control("random_matched", "random", MATCHED)
control("magnitude_global", "magnitude", "global")
control("magnitude_matched", "magnitude", MATCHED)

# criteria that need no posterior: they are controls themselves, never a control's reference
NON_BAYESIAN = ("random", "magnitude")


def reference_criteria(criteria) -> list[str]:
    """The criteria of a sweep that get controls: all but random and magnitude."""
    return [c for c in criteria if c not in NON_BAYESIAN]


def control_masks(
    model: nn.Module, name: str, reference: dict[str, torch.Tensor], seed: int = 0
) -> dict[str, torch.Tensor]:
    """The masks of control ``name`` removing as many weights as ``reference`` does (in total
    for a global control, layer by layer for a matched one)."""
    base, scope = CONTROLS[name]
    scores = WEIGHT_CRITERIA[base](model, torch.Generator().manual_seed(int(seed)))
    if scope == MATCHED:
        return masks_matching(scores, reference)
    removed = sum(int((m == 0).sum()) for m in reference.values())
    total = sum(m.numel() for m in reference.values())
    # fraction·total rounds back to ``removed`` exactly (masks_from_scores uses round)
    return masks_from_scores(scores, removed / total, scope)
