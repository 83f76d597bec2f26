"""CIFAR ResNets built from a layer factory: ResNet-20 (He et al. 2016, Sec. 4.2) and the CIFAR
variant of ResNet-18 used by Ke & Fan 2022 (arXiv 2210.12957, Sec. 5).

Every convolution is the factory's prunable conv (so a method can zero its weights or whole
filters through ``weight_mask``); batch normalisation follows each convolution. The residual
stream of a stage has a fixed width; blocks that change width or resolution use the paper's
shortcut: option A for ResNet-20 (stride-2 subsampling and zero channels, no parameters), a 1×1
projection conv + BN (option B) for ResNet-18.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .factory import LayerFactory


class PadShortcut(nn.Module):
    """He et al.'s option A: subsample by ``stride`` and pad the channels with zeros, ``pad`` on
    each side (the new channels sit in the middle of the wider stream)."""

    def __init__(self, stride: int, pad: int):
        super().__init__()
        self.stride, self.pad = stride, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); conv1 (3×3, ``stride``) writes the
    block's *inner* channels, conv2 (3×3) writes into the residual stream."""

    def __init__(
        self, layers: LayerFactory, in_planes: int, planes: int, stride: int, shortcut: str
    ):
        super().__init__()
        self.conv1 = layers.conv(in_planes, planes, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = layers.conv(planes, planes, 3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = PadShortcut(stride, (planes - in_planes) // 2)
            else:
                self.shortcut = nn.Sequential(
                    layers.conv(in_planes, planes, 1, stride=stride, padding=0),
                    nn.BatchNorm2d(planes),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """stem conv 3×3 → BN → ReLU → stages of basic blocks (the first block of every stage after
    the first has stride 2) → global average pool → linear classifier."""

    def __init__(
        self,
        layers: LayerFactory,
        input_shape,
        n_classes: int,
        widths=(16, 32, 64),
        blocks=(3, 3, 3),
        shortcut: str = "A",
    ):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if len(widths) != len(blocks):
            raise ValueError(f"widths {widths} and blocks {blocks} differ in length")
        self.input_shape = tuple(int(s) for s in input_shape)
        c = self.input_shape[0]
        self.stem = layers.conv(c, int(widths[0]), 3, stride=1, padding=1)
        self.stem_bn = nn.BatchNorm2d(int(widths[0]))
        stages, in_planes = [], int(widths[0])
        for s, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            stage = []
            for b in range(int(n)):
                stride = 2 if s > 0 and b == 0 else 1
                stage.append(BasicBlock(layers, in_planes, int(width), stride, shortcut))
                in_planes = int(width)
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.fc = layers.linear(in_planes, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.stages(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def blocks(self) -> list[BasicBlock]:
        return [b for stage in self.stages for b in stage]


def build_resnet(spec: dict, layers: LayerFactory) -> CifarResNet:
    """``spec``: name (resnet20 / resnet18), widths, blocks, shortcut, input_shape, n_classes."""
    return CifarResNet(
        layers,
        spec["input_shape"],
        int(spec["n_classes"]),
        tuple(int(w) for w in spec["widths"]),
        tuple(int(b) for b in spec["blocks"]),
        str(spec.get("shortcut", "A")),
    )
