"""Physically smaller CIFAR ResNets from filter-pruned ones (removed filters are gone from the
rebuilt network), equal to the masked model in evaluation mode up to float rounding.

Batch norm (running statistics) is folded into the convolution before it, W' = s·W,
b' = s·b + t with s = γ/√(σ²+ε), t = β − s·μ, so the rebuilt network is convolutions, ReLUs,
additions and one linear layer. A filter is *removed* when all its weights are zero (what a
channel-pruning method such as EM-MCMC's group removal leaves); its output is then the constant
b'_k over the whole map.

Channels, by where they live:
  * **inner channels** of a basic block (written by conv1, read only by conv2) are removed for
    good: conv1 loses the filter, conv2 loses the input channel. A removed filter's constant
    relu(b'_k) is folded into conv2 exactly — with padding, a constant map gives conv2 a
    position-dependent output near the border, so the folded term is a bias *map*, computed once
    by running conv2 over the constant channels at the block's input size.
  * **residual-stream channels** (written by the stem, every block's conv2 and projection
    shortcuts, read by every later block) keep their width: a stream channel could only go if
    every writer *and* every reader of it in the stage pruned it. The writers' removed filters
    are not computed (their convolution has only the kept output filters); their constants are
    added back in a fixed map (``ScatterConv``). So a removed stream filter saves its
    multiply-accumulates but not the stream width. Inputs of the final linear layer whose
    weight columns are all zero are dropped (``SelectFeatures``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.resnets import BasicBlock, CifarResNet
from .primitives import SelectFeatures, effective_bias, effective_weight


class ScatterConv(nn.Module):
    """A convolution that computes only its kept output filters and writes them into a map of
    the full width: ``y = const + scatter(index, conv(x))``. ``const`` (channels, H, W) holds the
    folded biases and the constant outputs of the removed filters; ``conv`` is None when every
    filter is removed."""

    def __init__(self, conv: nn.Conv2d | None, index: torch.Tensor, const: torch.Tensor):
        super().__init__()
        self.conv = conv
        self.register_buffer("index", index.to(torch.long))
        self.register_buffer("const", const)
        self.all_kept = bool(index.numel() == const.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.const.unsqueeze(0)
        if self.conv is None:
            return base.expand(x.shape[0], -1, -1, -1)
        z = self.conv(x)
        if self.all_kept:
            return z + base
        return base.repeat(z.shape[0], 1, 1, 1).index_add_(1, self.index, z)

    def extra_repr(self) -> str:
        return f"{self.index.numel()} of {self.const.shape[0]} filters computed"


class SlimBlock(nn.Module):
    """relu(main(relu(inner(x))) + shortcut(x)) with only the kept inner channels."""

    def __init__(self, inner: nn.Conv2d | None, main: ScatterConv, shortcut: nn.Module):
        super().__init__()
        self.inner, self.main, self.shortcut = inner, main, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inner(x)) if self.inner is not None else x
        return F.relu(self.main(h) + self.shortcut(x))


class SlimResNet(nn.Module):
    """The rebuilt network: stem → slim blocks → average pool → kept features → linear."""

    def __init__(self, stem: ScatterConv, blocks, select: SelectFeatures, fc: nn.Linear):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.select, self.fc = select, fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(self.select(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


def fold_batchnorm(conv: nn.Module, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The effective (masked) conv weight and bias with eval-mode batch norm folded in."""
    s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    t = bn.bias.detach() - s * bn.running_mean
    w = effective_weight(conv) * s.view(-1, 1, 1, 1)
    return w, effective_bias(conv) * s + t


def _plain_conv(template: nn.Module, w: torch.Tensor, b: torch.Tensor | None) -> nn.Conv2d:
    conv = torch.nn.utils.skip_init(
        nn.Conv2d,
        w.shape[1],
        w.shape[0],
        tuple(w.shape[2:]),
        stride=template.stride,
        padding=template.padding,
        bias=b is not None,
        device=w.device,
        dtype=w.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(w)
        if b is not None:
            conv.bias.copy_(b)
    return conv


def _scatter_conv(template: nn.Module, w, b, out_hw, extra=None) -> ScatterConv:
    """Stream writer: the kept (non-zero) filters of ``w`` computed, the rest constants.
    ``extra`` (channels, H, W) is added to the constant map (folded constant inputs)."""
    kept = w.flatten(1).ne(0).any(1)
    const = b.view(-1, 1, 1).expand(-1, *out_hw).clone()
    if extra is not None:
        const += extra
    index = kept.nonzero().flatten()
    conv = _plain_conv(template, w[kept], None) if index.numel() and w.shape[1] else None
    return ScatterConv(conv, index, const)


def _spatial_sizes(model: CifarResNet) -> dict[nn.Module, tuple[int, int]]:
    """Output (H, W) of every conv of ``model`` for its input shape (one probe pass)."""
    sizes, hooks = {}, []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(
                m.register_forward_hook(
                    lambda mod, _, out: sizes.__setitem__(mod, tuple(out.shape[2:]))
                )
            )
    p = next(model.parameters())
    try:
        model(torch.zeros(1, *model.input_shape, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
    return sizes


def _slim_block(block: BasicBlock, sizes) -> SlimBlock:
    w1, b1 = fold_batchnorm(block.conv1, block.bn1)
    w2, b2 = fold_batchnorm(block.conv2, block.bn2)
    live = w1.flatten(1).ne(0).any(1)  # inner channels that are not constant
    useful = w2.ne(0).any(dim=(0, 2, 3))  # inner channels that conv2 reads
    kept = live & useful
    const_in = ~live & useful
    extra = None
    if const_in.any():  # constant inner channels relu(b1'): their exact share of conv2's output
        value = F.relu(b1[const_in]).view(1, -1, 1, 1).expand(1, -1, *sizes[block.conv1])
        extra = F.conv2d(
            value, w2[:, const_in], stride=block.conv2.stride, padding=block.conv2.padding
        )[0]
    inner = _plain_conv(block.conv1, w1[kept], b1[kept]) if kept.any() else None
    main = _scatter_conv(block.conv2, w2[:, kept], b2, sizes[block.conv2], extra)
    if isinstance(block.shortcut, nn.Sequential):  # option B: 1x1 projection + BN
        conv, bn = block.shortcut
        ws, bs = fold_batchnorm(conv, bn)
        shortcut: nn.Module = _scatter_conv(conv, ws, bs, sizes[conv])
    else:
        shortcut = block.shortcut  # identity or option A: no parameters
    return SlimBlock(inner, main, shortcut)


@torch.no_grad()
def shrink_resnet(model: CifarResNet) -> SlimResNet:
    """A SlimResNet with the removed filters gone, equal to ``model`` in evaluation mode."""
    was_training = model.training
    model.eval()
    try:
        sizes = _spatial_sizes(model)
        w, b = fold_batchnorm(model.stem, model.stem_bn)
        stem = _scatter_conv(model.stem, w, b, sizes[model.stem])
        blocks = [_slim_block(block, sizes) for block in model.blocks()]
        wf, bf = effective_weight(model.fc), effective_bias(model.fc)
        cols = wf.ne(0).any(0)
        fc = nn.Linear(int(cols.sum()), wf.shape[0], device=wf.device, dtype=wf.dtype)
        fc.weight.copy_(wf[:, cols])
        fc.bias.copy_(bf)
        return SlimResNet(stem, blocks, SelectFeatures(cols.nonzero().flatten()), fc).eval()
    finally:
        model.train(was_training)
