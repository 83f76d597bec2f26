"""Non-Bayesian baselines: plain training ("sgd": no regularisation) and dropout (Srivastava et
al. 2014) on hidden units. Both are pruned by weight magnitude |w| (Han et al. 2015) or randomly."""

from __future__ import annotations

from ..layers import MaskedConv2d, MaskedLinear
from ..nets.factory import LayerFactory
from .base import Method


class Deterministic(Method):
    """Point-estimate network; ``dropout`` > 0 applies dropout after every hidden layer."""

    def layer_factory(self) -> LayerFactory:
        return LayerFactory(
            linear=lambda i, o, bias=True: MaskedLinear(i, o, bias),
            conv=lambda i, o, k, stride=1, padding=0, **kw: MaskedConv2d(
                i, o, k, stride, padding, **kw
            ),
        )

    def describe(self) -> dict:
        return {"method": self.name, "dropout": self.dropout}
