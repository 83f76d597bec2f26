"""Starting a run from a trained network's weights (``train.init_from``).

Molchanov et al. (2017) train Sparse VD on LeNet-5 from a pretrained network rather than from a
random initialisation (docs/published.md, Molchanov section). ``train.init_from``
names where the weights come from:

  * a method config name (``sgd``): the run of *this* experiment's configuration with that
    method (its own defaults, ``init_from`` unset), which must have finished, e.g. the
    "Original" network of the same table;
  * a run directory (anything containing a path separator).

Every prunable layer's point weight (``point_weight()``: w for a deterministic layer, μ for Bayes
by Backprop, θ for Sparse VD, the slab mean for SS-VI) and its bias are copied, layer by layer in
order, from the source's mean weights (masked weights as zeros). The other parameters (σ, log σ²,
inclusion logits) keep their method's initialisation. The source's run-directory name, which
carries its hash, enters this run's identity.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..evaluation.records import METRICS
from ..layers.masked import prunable_layers
from .identity import load_run


def _point_bias(layer: nn.Module) -> torch.Tensor | None:
    """The bias of the evaluation-mode pass: ``bias``, or Bayes by Backprop's ``bias_mu``."""
    bias = getattr(layer, "bias", None)
    return getattr(layer, "bias_mu", None) if bias is None else bias


def initialise_from_run(model: nn.Module, source_dir: Path) -> None:
    """Copy the source run's point weights and biases into ``model``'s prunable layers."""
    source_dir = Path(source_dir)
    if not (source_dir / METRICS).exists():
        raise UserError(
            f"train.init_from: {source_dir} has not finished training; train it first "
            "(same command with method=<its method>)"
        )
    _, _, source, _ = load_run(source_dir, torch.device("cpu"))
    src_layers = list(prunable_layers(source).items())
    dst_layers = list(prunable_layers(model).items())
    if len(src_layers) != len(dst_layers):
        raise UserError(
            f"train.init_from: {source_dir.name} has {len(src_layers)} prunable layers, "
            f"this model {len(dst_layers)}"
        )
    with torch.no_grad():
        for (src_name, src), (dst_name, dst) in zip(src_layers, dst_layers, strict=True):
            w = src.masked(src.point_weight())
            if w.shape != dst.point_weight().shape:
                raise UserError(
                    f"train.init_from: layer {src_name} has weight shape {tuple(w.shape)}, "
                    f"this model's {dst_name} {tuple(dst.point_weight().shape)}"
                )
            dst.point_weight().copy_(w)
            src_bias, dst_bias = _point_bias(src), _point_bias(dst)
            if src_bias is not None and dst_bias is not None:
                dst_bias.copy_(src_bias)
