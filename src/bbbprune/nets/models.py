"""Architectures built from a layer factory, so one definition serves every method.

A method supplies the factory (deterministic masked layers, Bayesian layers, ...); the
architecture only says which layers, in which order, with which sizes.
"""

from __future__ import annotations

import math

from torch import nn

from ..errors import check_choice
from .factory import LayerFactory
from .pooling import MaxPool2x2
from .resnets import build_resnet


class MLP(nn.Module):
    """Flatten → [linear → ReLU → dropout] × len(hidden) → linear (logits)."""

    def __init__(
        self,
        layers: LayerFactory,
        in_features: int,
        hidden,
        n_classes: int,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        mods: list[nn.Module] = [nn.Flatten()]
        if input_dropout > 0:
            mods.append(nn.Dropout(input_dropout))
        width = in_features
        for h in hidden:
            mods += [layers.linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                mods.append(nn.Dropout(dropout))
            width = int(h)
        mods.append(layers.linear(width, n_classes))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5-Caffe: conv 20 (5×5) → pool → conv 50 (5×5) → pool → fc 500 → fc classes."""

    def __init__(
        self,
        layers: LayerFactory,
        input_shape,
        n_classes: int,
        conv=(20, 50),
        fc=500,
        dropout: float = 0.0,
    ):
        super().__init__()
        c, h, w = input_shape
        c1, c2 = conv
        self.features = nn.Sequential(
            layers.conv(c, c1, 5),
            nn.ReLU(),
            MaxPool2x2(),
            layers.conv(c1, c2, 5),
            nn.ReLU(),
            MaxPool2x2(),
            nn.Flatten(),
        )
        side_h, side_w = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        head: list[nn.Module] = [layers.linear(c2 * side_h * side_w, fc), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(layers.linear(fc, n_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.features(x))


ARCHITECTURES = ("mlp", "lenet5", "resnet20", "resnet18")


def build_model(spec: dict, layers: LayerFactory) -> nn.Module:
    """Build the architecture described by ``spec`` (name, sizes, input_shape, n_classes)."""
    if spec.get("source") == "torchvision":  # model=torchvision model.name=<any classifier>
        from .torchvision import build_torchvision

        return build_torchvision(spec, layers)
    name = check_choice("model", spec["name"], ARCHITECTURES)
    dropout = float(spec.get("dropout", 0.0))
    if name in ("resnet20", "resnet18"):
        return build_resnet(spec, layers)
    if name == "mlp":
        return MLP(
            layers,
            math.prod(spec["input_shape"]),
            spec["hidden"],
            spec["n_classes"],
            dropout,
            float(spec.get("input_dropout", 0.0)),
        )
    return LeNet5(
        layers,
        spec["input_shape"],
        spec["n_classes"],
        tuple(spec["conv"]),
        int(spec["fc"]),
        dropout,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
