"""The controls at matched sparsity of a pruning evaluation (bbbprune.pruning.controls): for
each Bayesian criterion and fraction of the sweep, every control in ``prune.controls`` removes as
many weights as that criterion's mask, and is written as a record of its own whose
``criterion`` names the control and ``reference_criterion`` the criterion it matches."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import check_choice
from ..pruning.controls import control_masks, reference_criteria
from ..pruning.masking import apply_masks, masks_from_scores
from ..pruning.registry import CONTROLS, WEIGHT_CRITERIA


def control_file_name(control: str, reference: str) -> str:
    """The criterion part of a control record's file name: one file per control and reference."""
    return f"{control}-vs-{reference}"


def is_control(file_name: str) -> bool:
    """Whether a record's criterion part (``control_file_name``) names a control."""
    return "-vs-" in file_name


def control_jobs(model: nn.Module, criteria, fractions, prune_cfg, done: Callable) -> list:
    """``(file name, fraction, apply, reference)`` for every control of every Bayesian criterion
    at every fraction > 0 not ``done(file name, fraction)`` yet; ``apply()`` masks the (unmasked,
    trained) model with the control's masks."""
    controls = list(prune_cfg.get("controls") or [])
    for c in controls:
        check_choice("prune.controls", c, CONTROLS)
    scope, seed = prune_cfg.scope, int(prune_cfg.seed)

    def apply(control, reference, fraction):
        def run():
            generator = torch.Generator().manual_seed(seed)
            ref_scores = WEIGHT_CRITERIA[reference](model, generator)
            ref_masks = masks_from_scores(ref_scores, fraction, scope)
            apply_masks(model, control_masks(model, control, ref_masks, seed))

        return run

    return [
        (control_file_name(c, ref), f, apply(c, ref, f), ref)
        for ref in reference_criteria(criteria)
        for f in map(float, fractions)
        if f > 0
        for c in controls
        if not done(control_file_name(c, ref), f)
    ]


def control_fields(file_name: str, reference: str | None) -> dict:
    """The record fields of a control (none for a criterion's own records)."""
    if reference is None:
        return {"reference_criterion": None}
    return {"criterion": file_name.split("-vs-")[0], "reference_criterion": reference}
