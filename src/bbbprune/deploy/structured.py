"""Physically smaller networks from pruned ones: drop the neurons and channels that masks have cut
off, and keep the outputs exactly (up to float rounding) those of the masked model in evaluation.

Works for any prunable layer: the weight used is what the layer computes with in an evaluation
pass, ``layer.masked(layer.point_weight())`` (w for MaskedLinear, μ for BayesLinear, θ for
LinearSVD, θ·μ_z for the group layers), and the bias is ``bias_mu`` (Bayes layers) or ``bias``.

Which units survive (a fixed point, so it removes at least the units with no non-zero incoming or
no non-zero outgoing weight, and everything that becomes dead once those are gone):
  * *live*: a unit is live if it has a non-zero weight from a live unit of the layer below
    (network inputs are live). A unit that is not live is a constant, relu(b'), where b' is its
    bias plus the contributions of the constants below; that constant is folded into the biases
    of the layer above — dropping it would change the outputs whenever relu(b') ≠ 0.
  * *useful*: an output is useful; a unit is useful if it has a non-zero weight into a kept unit.
  * a unit (or network input) is kept iff it is live and useful. A live unit that is not useful
    only feeds units that are gone; a unit that is not live contributes only its folded constant.
Convolutional channels follow the same rules; folding a constant channel into the next
convolution's bias needs that convolution to have no padding (each output then sees the whole
kernel over a constant map: the constant times the sum of the kernel). Max-pooling a constant map
gives the same constant, so the LeNet-5 ReLU → max-pool blocks keep constants constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from ..errors import UserError
from ..layers import prunable_layers
from ..nets.models import MLP, LeNet5
from ..nets.resnets import CifarResNet
from .primitives import SelectFeatures, effective_bias, effective_weight
from .structured_resnet import shrink_resnet

# modules the rebuild may step over (in evaluation mode dropout is the identity)
CHAIN_PASSTHROUGH = (nn.ReLU, nn.Dropout, nn.Flatten, nn.Identity)
FEATURES_PASSTHROUGH = (nn.ReLU, nn.MaxPool2d, nn.Flatten)


def _shrink_chain(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    input_live: torch.Tensor,
    input_value: torch.Tensor,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Linear → ReLU → ... → Linear chain (weights (out, in)). Inputs that are not live hold the
    constants ``input_value``. Returns the indices of the kept inputs and, per layer, the kept
    weight block and the bias with every constant folded in."""
    live, value = [input_live], [input_value]
    folded = []
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        const_in = ~live[k]
        folded.append(b + w[:, const_in] @ value[k][const_in])
        live.append(w[:, live[k]].ne(0).any(1))
        value.append(F.relu(folded[k]) if k < len(weights) - 1 else folded[k])
    kept_out = torch.ones(weights[-1].shape[0], dtype=torch.bool, device=weights[-1].device)
    kept_in = []
    for k in range(len(weights) - 1, -1, -1):
        kept_in_k = live[k] & weights[k][kept_out].ne(0).any(0)
        kept_in.insert(0, (kept_in_k, kept_out))
        kept_out = kept_in_k
    blocks = [
        (w[k_out][:, k_in], b[k_out])
        for w, b, (k_in, k_out) in zip(weights, folded, kept_in, strict=True)
    ]
    return kept_in[0][0].nonzero().flatten(), blocks


def _linear(w: torch.Tensor, b: torch.Tensor) -> nn.Linear:
    layer = torch.nn.utils.skip_init(
        nn.Linear, w.shape[1], w.shape[0], device=w.device, dtype=w.dtype
    )
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    return layer


def _linear_stack(blocks) -> list[nn.Module]:
    mods: list[nn.Module] = []
    for k, (w, b) in enumerate(blocks):
        mods.append(_linear(w, b))
        if k < len(blocks) - 1:
            mods.append(nn.ReLU())
    return mods


def _chain_layers(seq: nn.Sequential, what: str, passthrough=CHAIN_PASSTHROUGH) -> list[nn.Module]:
    """The prunable layers of a sequence, refusing modules other than ``passthrough`` ones."""
    layers = []
    for m in seq:
        if hasattr(m, "point_weight"):
            layers.append(m)
        elif not isinstance(m, passthrough):
            raise UserError(f"cannot shrink {what}: unexpected module {type(m).__name__}")
    return layers


@torch.no_grad()
def shrink_mlp(model: MLP) -> nn.Sequential:
    """A plain Flatten → SelectFeatures → [Linear → ReLU]* → Linear network with only the kept
    inputs and hidden units, equal to ``model`` in evaluation mode (dropout off)."""
    if not isinstance(model, MLP):
        raise UserError(f"shrink_mlp needs a bbbprune.nets.models.MLP, not {type(model).__name__}")
    layers = _chain_layers(model.net, "the MLP")
    weights = [effective_weight(m).flatten(1) for m in layers]
    biases = [effective_bias(m) for m in layers]
    n_in = weights[0].shape[1]
    live = torch.ones(n_in, dtype=torch.bool, device=weights[0].device)
    kept_inputs, blocks = _shrink_chain(weights, biases, live, torch.zeros_like(weights[0][0]))
    return nn.Sequential(nn.Flatten(), SelectFeatures(kept_inputs), *_linear_stack(blocks))


def _conv(layer: nn.Module, w: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    conv = torch.nn.utils.skip_init(
        nn.Conv2d,
        w.shape[1],
        w.shape[0],
        w.shape[2:],
        stride=layer.stride,
        padding=0,
        device=w.device,
        dtype=w.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(b)
    return conv


@torch.no_grad()
def shrink_lenet5(model: LeNet5) -> nn.Sequential:
    """LeNet-5 with only the kept filters (conv), input features of the first fully connected
    layer and hidden units: conv → ReLU → pool → conv → ReLU → pool → Flatten → SelectFeatures →
    Linear → ReLU → Linear, equal to ``model`` in evaluation mode."""
    if not isinstance(model, LeNet5):
        raise UserError(
            f"shrink_lenet5 needs a bbbprune.nets.models.LeNet5, not {type(model).__name__}"
        )
    convs = _chain_layers(model.features, "the LeNet-5 features", FEATURES_PASSTHROUGH)
    fcs = _chain_layers(model.classifier, "the LeNet-5 classifier")
    for conv in convs:
        if _pair(conv.padding) != (0, 0):
            raise UserError(
                f"cannot fold constant channels through padding {conv.padding}: padding 0 only"
            )
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    w1, w2 = (effective_weight(c) for c in convs)
    b1, b2 = (effective_bias(c) for c in convs)
    live1 = w1.flatten(1).ne(0).any(1)  # a filter with no weight outputs relu(b1): a constant
    value1 = F.relu(b1)  # ... and max-pooling keeps it
    b2 = b2 + (w2[:, ~live1].sum((2, 3)) @ value1[~live1])
    live2 = w2[:, live1].flatten(1).ne(0).any(1)
    value2 = F.relu(b2)
    per_channel = effective_weight(fcs[0]).shape[1] // w2.shape[0]
    kept_features, blocks = _shrink_chain(
        [effective_weight(m) for m in fcs],
        [effective_bias(m) for m in fcs],
        live2.repeat_interleave(per_channel),
        value2.repeat_interleave(per_channel),
    )
    kept2 = torch.zeros_like(live2)
    kept2[kept_features // per_channel] = True
    kept1 = live1 & w2[kept2].ne(0).any(dim=(0, 2, 3))
    # renumber the kept features within the kept channels of the smaller conv2
    new_channel = torch.cumsum(kept2.long(), 0) - 1
    index = new_channel[kept_features // per_channel] * per_channel + kept_features % per_channel
    return nn.Sequential(
        _conv(convs[0], w1[kept1], b1[kept1]),
        nn.ReLU(),
        pools[0],
        _conv(convs[1], w2[kept2][:, kept1], b2[kept2]),
        nn.ReLU(),
        pools[1],
        nn.Flatten(),
        SelectFeatures(index),
        *_linear_stack(blocks),
    )


def shrink(model: nn.Module) -> nn.Module:
    """shrink_mlp, shrink_lenet5 or structured_resnet.shrink_resnet, by architecture."""
    if isinstance(model, MLP):
        return shrink_mlp(model)
    if isinstance(model, LeNet5):
        return shrink_lenet5(model)
    if isinstance(model, CifarResNet):
        return shrink_resnet(model)
    raise UserError(
        f"no structured rebuild for {type(model).__name__}; valid: MLP, LeNet5, CifarResNet"
    )


def kept_widths(net: nn.Module) -> list[int]:
    """Widths of a shrunk network: conv filters (computed ones, in module order), then the inputs
    of the first Linear and the outputs of every Linear (e.g. [20, 50, 800, 500, 10] for an
    unpruned LeNet-5)."""
    widths, seen_linear = [], False
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            widths.append(m.out_channels)
        elif isinstance(m, nn.Linear):
            if not seen_linear:
                widths.append(m.in_features)
                seen_linear = True
            widths.append(m.out_features)
    return widths


def removed_units(model: nn.Module) -> dict:
    """How much of ``model`` the structured rebuild removes: the kept widths, and the count of
    weights of the shrunk network against the prunable weights of ``model``."""
    small = shrink(model)
    dense = sum(m.point_weight().numel() for m in prunable_layers(model).values())
    kept = sum(m.weight.numel() for m in small.modules() if isinstance(m, nn.Linear | nn.Conv2d))
    return {"kept_widths": kept_widths(small), "weights": kept, "weights_before": dense}
