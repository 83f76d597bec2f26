"""One rule for "weights removed", compression and speed-up, the same for every method and table.

After Blalock, Gonzalez Ortiz, Frankle & Guttag 2020 ("What is the state of neural network
pruning?", Sec. 3 / ShrinkBench): sparsity and compression are defined once, and every pruned row
reports compression and the theoretical speed-up in multiply-adds.

  * prunable weights P: the weights of the conv and linear layers of the unpruned network
    (biases, σ / ρ / log α and other variational parameters are not deployed);
  * masked weights: the prunable weights a mask sets to 0 (what a method's rule or a criterion
    masks: EM-MCMC masks the incoming weights of a removed unit, SS-VI and Sparse VD only the
    outgoing ones, so this count alone differs in meaning between methods);
  * deployed weights D: the non-zero weights of the network as deployed, i.e. after the dead
    units are gone (``structured.shrink``: a unit or channel without a non-zero incoming weight
    from a live unit, or without a non-zero outgoing weight into a kept one, is removed with
    every weight it touches; a constant unit is folded into the next layer's bias);
  * removed fraction 1 − D / P, compression P / D;
  * multiply-adds for one input: a weight costs one multiply-add per output position it is
    applied at (1 for a linear layer, H_out · W_out for a convolution); dense MACs count every
    weight of the unpruned network, deployed MACs the non-zero weights of the deployed one; the
    theoretical speed-up is their ratio.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..pruning.masking import sparsity
from .complexity import count_macs, count_weights, dense_copy, empty_convolution, probe_forward
from .primitives import effective_weight
from .structured import shrink


@torch.no_grad()
def applied_weights(net: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    """(module, weight it computes with) of every conv and linear layer of ``net``: the masked
    point weight of a prunable layer, ``weight`` of a plain nn.Conv2d / nn.Linear."""
    out = []
    for m in net.modules():
        if hasattr(m, "point_weight"):
            out.append((m, effective_weight(m)))
        elif isinstance(m, nn.Conv2d | nn.Linear):
            out.append((m, m.weight.detach()))
    return out


@torch.no_grad()
def nonzero_macs(net: nn.Module, input_shape) -> int:
    """Σ over conv/linear layers of (non-zero weights) × (output positions) for one input of
    ``input_shape``: the multiply-adds left when zero weights are skipped."""
    layers = applied_weights(net)
    positions: dict[int, int] = {}

    def hook_for(key: int):
        def hook(_m, _inputs, out):
            # one input: out[0] is (channels, H, W) for a conv, (features,) for a linear
            positions[key] = out[0].numel() // max(out[0].shape[0], 1)  # a layer may be empty

        return hook

    hooks = [m.register_forward_hook(hook_for(i)) for i, (m, _) in enumerate(layers)]
    probe_forward(net, input_shape, hooks)
    return sum(int(w.count_nonzero()) * positions.get(i, 0) for i, (_, w) in enumerate(layers))


@torch.no_grad()
def deployed_counts(model: nn.Module, input_shape) -> dict:
    """The counts of the module docstring for a (masked) ``model``, as record fields:
    ``weights_prunable``, ``weights_masked``, ``masked_sparsity`` (masked / prunable),
    ``weights_deployed``, ``removed_deployed`` (1 − D / P), ``compression_deployed`` (P / D),
    ``macs_dense``, ``macs_deployed``, ``speedup_theoretical`` (dense / deployed MACs) and
    ``deployed_rebuild`` (False where no structured rebuild exists for the architecture: then
    no unit is removed and D counts the non-zero weights of the masked network)."""
    was_training = model.training
    model.eval()
    try:
        dense = dense_copy(model)
        prunable = count_weights(dense)
        masked = sparsity(model)["removed"]
        try:
            deployed_net, rebuilt = shrink(model).eval(), True
        except UserError:
            deployed_net, rebuilt = model, False
        deployed = sum(int(w.count_nonzero()) for _, w in applied_weights(deployed_net))
        macs_dense = count_macs(dense, input_shape)  # every weight, zero-valued or not
        macs_deployed = (
            0 if empty_convolution(deployed_net) else nonzero_macs(deployed_net, input_shape)
        )
    finally:
        model.train(was_training)
    return {
        "weights_prunable": prunable,
        "weights_masked": masked,
        "masked_sparsity": masked / max(prunable, 1),
        "weights_deployed": deployed,
        "removed_deployed": 1 - deployed / max(prunable, 1),
        "compression_deployed": prunable / max(deployed, 1),
        "macs_dense": macs_dense,
        "macs_deployed": macs_deployed,
        "speedup_theoretical": macs_dense / max(macs_deployed, 1),
        "deployed_rebuild": rebuilt,
    }
