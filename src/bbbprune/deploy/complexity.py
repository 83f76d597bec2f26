"""What a network costs: weights and multiply-accumulates (MACs) of its conv and linear layers,
for the dense (masked) network against its physically smaller rebuild, and their forward latency.

Counting rules (the same for both sides, so the ratios mean something):
  * weights: the weight tensors of every nn.Conv2d and nn.Linear and every prunable layer of any
    method (Bayes by Backprop, Sparse VD, spike-and-slab: their point weight; masked layers count
    at their full, dense size); biases, batch norm and folded constants are O(channels) and left
    out.
  * MACs for one input image: a conv computes (in_channels / groups)·kh·kw MACs per output
    element, a linear in_features MACs per output; ReLU, pooling, batch norm, residual additions
    and constant maps are not counted.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

from ..layers.bayes import sampling
from ..pruning.masking import apply_masks
from .structured import shrink


def count_filters(net: nn.Module) -> int:
    """Output filters (channels) computed by the conv layers of ``net``."""
    return sum(m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d))


def _weighted_layers(net: nn.Module):
    """(module, weight) of every conv/linear layer: plain torch layers and any method's prunable
    layer (which exposes ``point_weight()``, e.g. Bayesian layers with μ and ρ)."""
    for m in net.modules():
        if hasattr(m, "point_weight"):
            yield m, m.point_weight()
        elif isinstance(m, nn.Conv2d | nn.Linear):
            yield m, m.weight


def count_weights(net: nn.Module) -> int:
    """Weights of the conv and linear layers of ``net`` (dense size)."""
    with torch.no_grad():
        return sum(w.numel() for _, w in _weighted_layers(net))


@torch.no_grad()
def count_macs(net: nn.Module, input_shape) -> int:
    """Multiply-accumulates of the conv and linear layers for one input of ``input_shape``."""
    total, hooks = [0], []

    def hook_for(per_output: int):
        def hook(_m, _inputs, out):
            total[0] += out[0].numel() * per_output

        return hook

    for m, w in _weighted_layers(net):
        # one output element reads (in_channels / groups)·kh·kw inputs (conv) or in_features
        # (linear): the size of one row of the weight
        hooks.append(m.register_forward_hook(hook_for(w.shape[1:].numel())))
    probe_forward(net, input_shape, hooks)
    return total[0]


def probe_forward(net: nn.Module, input_shape, hooks) -> None:
    """One eval-mode pass of a zero input of ``input_shape`` through ``net`` (so that the
    forward ``hooks`` see every layer's output shape); then the hooks are removed and the
    training mode restored."""
    p = next(net.parameters())
    was_training = net.training
    net.eval()
    try:
        net(torch.zeros(1, *input_shape, dtype=p.dtype, device=p.device))
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()


def dense_copy(model: nn.Module) -> nn.Module:
    """The same architecture with every mask lifted: what the unpruned network costs to run."""
    dense = copy.deepcopy(model)
    apply_masks(dense, None)
    return dense.eval()


@torch.no_grad()
def median_latency_ms(nets: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict:
    """Median forward time (ms) of each net on ``x``; the nets take turns in every repeat, so a
    slow spell on a shared machine hits all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in nets}
    for net in nets.values():
        for _ in range(3):  # warm-up
            net(x)
    for _ in range(repeats):
        for name, net in nets.items():
            t0 = time.perf_counter()
            net(x)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def empty_convolution(net: nn.Module) -> bool:
    """A convolution of ``net`` has no filter left: no signal passes it, so the network's output
    is a constant, and torch cannot run a convolution with no filters (0 multiply-adds)."""
    return any(isinstance(m, nn.Conv2d) and m.out_channels == 0 for m in net.modules())


def compression_summary(
    model: nn.Module,
    x: torch.Tensor,
    measure_speed: bool = False,
    repeats: int = 30,
    batches=(1, 256),
) -> dict:
    """Weights, MACs and conv filters of ``model`` (dense, masks lifted) and of
    ``structured.shrink(model)`` (channel_sparsity: the share of conv filters no longer computed),
    the largest output difference between the masked model and the rebuild on ``x``, and (if
    ``measure_speed``) the median latency of the dense network and the rebuild at each batch
    size with their ratio (the speed-up)."""
    model.eval()
    small = shrink(model).eval()
    dense = dense_copy(model)
    shape = tuple(x.shape[1:])
    collapsed = empty_convolution(small)  # a constant network: nothing to run or time
    out = {
        "weights_dense": count_weights(dense),
        "weights_pruned": count_weights(small),
        "macs_dense": count_macs(dense, shape),
        "macs_pruned": 0 if collapsed else count_macs(small, shape),
        "filters_dense": count_filters(dense),
        "filters_pruned": count_filters(small),
    }
    out["channel_sparsity"] = 1 - out["filters_pruned"] / max(out["filters_dense"], 1)
    if collapsed:
        return out | {"rebuild_collapsed": True}
    with torch.no_grad(), sampling(model, False):  # Bayesian layers: their means
        a, b = model(x), small(x)
    out["rebuild_max_abs_diff"] = (a - b).abs().max().item()
    out["rebuild_same_predictions"] = bool((a.argmax(1) == b.argmax(1)).all())
    out["macs_ratio"] = out["macs_dense"] / max(out["macs_pruned"], 1)
    out["weights_ratio"] = out["weights_dense"] / max(out["weights_pruned"], 1)
    if measure_speed:
        for b in batches:
            xb = (
                x[:b]
                if len(x) >= b
                else x.repeat((b + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:b]
            )
            ms = median_latency_ms({"dense": dense, "pruned": small}, xb, repeats)
            out[f"latency_dense_b{b}_ms"] = ms["dense"]
            out[f"latency_pruned_b{b}_ms"] = ms["pruned"]
            out[f"speedup_b{b}"] = ms["dense"] / ms["pruned"]
    return out
