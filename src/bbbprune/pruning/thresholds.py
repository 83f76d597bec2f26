"""Threshold rules: a method's own pruning rule fixes a threshold and lets the model decide how
many weights go (registered in bbbprune.pruning.registry), and the compression it reaches.

``log_alpha``, Sparse VD's rule (Molchanov, Ashukha & Vetrov 2017): after training, a weight whose dropout rate satisfies log α ≥ 3 (α ≥ e³ ≈ 20, a signal-to-noise
ratio θ²/σ² below 0.05) is set to zero (the authors' code); for layers with
input-group variables, every weight of an input neuron / channel whose group log α ≥ 3 goes too.
Unlike the fraction sweeps of bbbprune.pruning.criteria, the rule fixes the threshold and lets the model
decide how many weights go. Compression is reported as in their Table 1, |W| / |W ≠ 0|.

``pip``, spike-and-slab's median-probability rule (Saha, Liu & Liang 2024): keep the outgoing
weights of every node whose posterior inclusion probability γ_j ≥ the threshold (0.5).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from ..layers import prunable_layers
from ..layers.spike_slab import spike_slab_layers
from .masking import apply_masks
from .registry import threshold_rule

DEFAULT_THRESHOLD = 3.0


@threshold_rule("log_alpha")
def threshold_masks(
    model: nn.Module, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, torch.Tensor]:
    """0/1 masks keeping exactly the weights with log α < ``threshold`` (group layers: the larger
    of the weight's and its group's log α). The masks come from log α alone — a mask already on
    the model is not combined in — and are shaped like the weights, ready for apply_masks."""
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise UserError(f"Sparse VD threshold must be a finite log α, got {threshold}")
    layers = prunable_layers(model)
    missing = [n for n, m in layers.items() if not hasattr(m, "effective_log_alpha")]
    if missing or not layers:
        where = f"{missing[0]} has none" if missing else "it has no prunable layers"
        raise UserError(
            f"threshold masks need a Sparse VD model (layers with a dropout rate log α); {where}"
        )
    with torch.no_grad():
        return {
            n: (m.effective_log_alpha() < threshold).to(m.point_weight().dtype)
            for n, m in layers.items()
        }


def compression(model: nn.Module) -> dict:
    """|W| / |W ≠ 0| over the prunable weights as the model computes with them (the masked
    evaluation-mode weight), plus overall and per-layer sparsity (the fraction that is zero).
    ``compression`` is ``inf`` when every weight is zero."""
    per_layer, nonzero, total = {}, 0, 0
    with torch.no_grad():
        for name, layer in prunable_layers(model).items():
            w = layer.masked(layer.point_weight())
            nz = int(torch.count_nonzero(w))
            per_layer[name] = 1.0 - nz / w.numel()
            nonzero, total = nonzero + nz, total + w.numel()
    return {
        "compression": total / nonzero if nonzero else math.inf,
        "sparsity": 1.0 - nonzero / max(total, 1),
        "nonzero": nonzero,
        "prunable": total,
        "per_layer": per_layer,
    }


def apply_threshold(model: nn.Module, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Set the threshold masks on ``model`` and return its ``compression`` figures (with the
    threshold), e.g. for the record of the method's own pruning rule."""
    apply_masks(model, threshold_masks(model, threshold))
    return {"threshold": float(threshold), **compression(model)}


@threshold_rule("pip")
def pip_masks(model: nn.Module, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """0/1 masks keeping the outgoing weights of every node with PIP γ_j ≥ ``threshold`` (the
    median-probability model at 0.5), shaped like the weights, ready for apply_masks."""
    with torch.no_grad():
        return {
            name: (layer._node_view(layer.pip()) >= threshold)
            .to(layer.weight_mu.dtype)
            .expand_as(layer.weight_mu)
            .clone()
            for name, layer in spike_slab_layers(model).items()
        }
