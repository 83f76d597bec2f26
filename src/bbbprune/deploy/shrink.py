"""``shrink``: a physically smaller network from a pruned one, with the same evaluation outputs.

The result is a plain network (nn.Linear / nn.Conv2d holding each layer's masked mean weight,
``layer.masked(layer.point_weight())``, and its mean bias; every other module kept) from which
whole channels and units are removed:

  * MLP, LeNet-5 and the CIFAR ResNets of bbbprune: the hand-written rebuilds of
    bbbprune.deploy.structured, which also fold the constant output of units that lost every incoming
    weight into the next layer's bias;
  * any other network: Torch-Pruning's dependency graph (Fang et al. 2023, "DepGraph: Towards
    any structural pruning", CVPR) groups every channel with everything coupled to it (batch
    norm, residual additions, concatenations, depthwise convolutions, the flattened features of
    a linear layer). A channel is removed, with its whole group, when nobody reads it: every
    layer that takes it as input has only zero weights on it (for a grouped convolution, the
    weights of the channel's group). Removing such a channel changes no output, so the result
    equals the masked network in evaluation mode up to float rounding. The layer that writes
    the network's output (the last nn.Linear / nn.Conv2d called) keeps all its outputs, and
    channels coupled to a grouped (not depthwise) convolution stay, since Torch-Pruning cannot
    remove part of a group.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..layers import sampling
from ..nets.models import MLP, LeNet5
from ..nets.plain import plain_copy
from ..nets.resnets import CifarResNet
from .complexity import empty_convolution, median_latency_ms
from .structured import shrink as handwritten

TRIAL_SIDES = (32, 28, 64, 224)  # image sides tried when no example input is given


def _example_inputs(model: nn.Module) -> torch.Tensor:
    first = next(m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d))
    p = first.weight
    if isinstance(first, nn.Linear):
        return torch.zeros(1, first.in_features, device=p.device, dtype=p.dtype)
    for side in TRIAL_SIDES:
        x = torch.zeros(1, first.in_channels, side, side, device=p.device, dtype=p.dtype)
        try:
            with torch.no_grad():
                model(x)
            return x
        except RuntimeError:
            continue
    raise UserError(
        f"shrink could not guess the input size of {type(model).__name__}: pass example_inputs="
        "<one batch of inputs>"
    )


def _output_layer(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The last nn.Linear / nn.Conv2d called in a forward pass: it writes the outputs."""
    called: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: called.append(m))
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return called[-1]


def _read_slice(module: nn.Module, channel: int) -> torch.Tensor:
    """The weights with which ``module`` reads its input channel / feature ``channel``."""
    w = module.weight
    if isinstance(module, nn.Linear):
        return w[:, channel]
    in_per_group = w.shape[1]
    out_per_group = module.out_channels // module.groups
    g = channel // in_per_group
    return w[g * out_per_group : (g + 1) * out_per_group, channel % in_per_group]


def _is_grouped(module) -> bool:
    """A grouped convolution that is not depthwise: Torch-Pruning cannot cut its groups."""
    return isinstance(module, nn.Conv2d) and 1 < module.groups < module.in_channels


def _unread_channels(group, graph) -> list[int]:
    """Root indices of the group that every reading layer reads with zero weights only."""
    read, seen = set(), set()
    for item in group:
        dep = item.dep
        module = dep.target.module
        if not graph.is_in_channel_pruning_fn(dep.handler):
            continue
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        for i, r in zip(item.idxs, item.root_idxs, strict=True):
            seen.add(r)
            if bool((_read_slice(module, i) != 0).any()):
                read.add(r)
    return sorted(seen - read)


def shrink_any(model: nn.Module, example_inputs: torch.Tensor | None = None) -> nn.Module:
    """The Torch-Pruning route of ``shrink`` (module docstring) for any network."""
    import torch_pruning as tp

    net = plain_copy(model)
    x = _example_inputs(net) if example_inputs is None else example_inputs
    output = _output_layer(net, x)
    graph = tp.DependencyGraph().build_dependency(net, example_inputs=x)
    # Root indices are output channels of the group's root layer, which belong to that group
    # alone, so they stay valid while other groups are pruned; each group is rebuilt at its turn.
    plan = []
    for group in graph.get_all_groups(ignored_layers=[output]):
        if any(
            item.dep.target.module is output and graph.is_out_channel_pruning_fn(item.dep.handler)
            for item in group
        ) or any(_is_grouped(item.dep.target.module) for item in group):
            continue
        unread = _unread_channels(group, graph)[: len(group[0].idxs) - 1]  # keep >= 1 channel
        if unread:
            plan.append((group[0].dep.target.module, group[0].dep.handler, unread))
    for module, handler, unread in plan:
        graph.get_pruning_group(module, handler, unread).prune()
    return net.eval()


def shrink(model: nn.Module, example_inputs: torch.Tensor | None = None) -> nn.Module:
    """A physically smaller plain network with the outputs of ``model`` in evaluation mode
    (mean weights); the hand-written rebuild for bbbprune's own architectures, Torch-Pruning for
    any other (module docstring). ``example_inputs``: one batch, needed to trace a network whose
    input size cannot be guessed."""
    with sampling(model, False):
        if isinstance(model, MLP | LeNet5 | CifarResNet):
            was = model.training
            try:
                return handwritten(model.eval()).eval()
            finally:
                model.train(was)
        return shrink_any(model, example_inputs)


def state_bytes(net: nn.Module) -> int:
    """Bytes of every parameter and buffer of ``net``, stored densely."""
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


def shrink_measurements(model: nn.Module, x: torch.Tensor, repeats: int = 0) -> dict:
    """Size of ``shrink(model)`` (parameters; bytes stored densely, float32), the largest
    |output difference| from the masked model on ``x``, and with ``repeats`` > 0 the median
    forward time of the shrunk network at batch 1 (ms). A rebuild with a convolution left without
    filters (the whole signal pruned away) is a constant network that torch cannot run: its size
    is reported with ``shrunk_collapsed``, no difference and no time."""
    was = model.training
    model.eval()
    try:
        small = shrink(model, x[:1])
        out = {
            "shrunk_params": sum(p.numel() for p in small.parameters()),
            "shrunk_bytes": state_bytes(small),
        }
        if empty_convolution(small):
            return out | {"shrunk_collapsed": True}
        with torch.no_grad(), sampling(model, False):
            out["shrunk_max_abs_diff"] = (model(x) - small(x)).abs().max().item()
    finally:
        model.train(was)
    if repeats > 0:
        out["shrunk_latency_b1_ms"] = median_latency_ms({"small": small}, x[:1], repeats)["small"]
    return out
