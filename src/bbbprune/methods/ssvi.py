"""Spike-and-slab variational inference with node inclusion probabilities (Saha, Liu & Liang
2024; Bai, Song & Cheng 2020): the layers and the derivation are in bbbprune.layers.spike_slab
and docs/ssvi.md."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..layers.bayes import kl_divergence
from ..layers.spike_slab import SpikeSlabConv2d, SpikeSlabLinear, pip_masks
from ..models import LayerFactory
from .base import Method, StepInfo


class SpikeSlabVI(Method):
    """Minibatch loss in per-example units (the negative ELBO divided by the training-set size N):

        NLL_mean + Σ KL / N,

    with Σ KL the exact KL of every layer (Bernoulli KL of each node's indicator plus the
    inclusion-weighted Gaussian KL of its outgoing weights), summed over the network, not
    averaged. Prediction: ``mean`` uses the posterior-mean weights γ_j μ_ij (with the masks of
    the pruning rule, if any), ``sampled`` averages ``eval_samples`` draws of hard indicators
    z ~ Bernoulli(γ) and weights. Pruning: the method's own rule keeps a node iff its PIP
    γ_j ≥ ``threshold`` (median-probability model at 0.5), input features included; the
    criterion ``pip`` sweeps fractions by PIP rank."""

    criteria = ("pip", "magnitude", "random")
    prediction_modes = ("mean", "sampled")

    def __init__(
        self,
        name: str,
        prior_inclusion: float = 0.2,
        slab_std: float = 1.0,
        temperature: float = 0.5,
        pip_init: float = 0.9,
        rho_init: float = -5.0,
        threshold: float = 0.5,
        pip_lr_scale: float = 1.0,
        eval_samples: int = 10,
        criteria=None,
        dropout: float = 0.0,
    ):
        super().__init__(name, dropout, criteria)
        if not 0.0 < float(threshold) <= 1.0:
            raise UserError(f"method.threshold must be a PIP in (0, 1], got {threshold}")
        if int(eval_samples) < 1:
            raise UserError(f"method.eval_samples must be >= 1, got {eval_samples}")
        self.layer_kw = dict(
            prior_inclusion=float(prior_inclusion),
            slab_std=float(slab_std),
            temperature=float(temperature),
            pip_init=float(pip_init),
            rho_init=float(rho_init),
        )
        self.threshold = float(threshold)
        if not float(pip_lr_scale) > 0:
            raise UserError(f"method.pip_lr_scale must be > 0, got {pip_lr_scale}")
        self.pip_lr_scale = float(pip_lr_scale)
        self.eval_samples = int(eval_samples)
        SpikeSlabLinear(1, 1, **self.layer_kw)  # fail now on bad settings, not mid-training

    def layer_factory(self) -> LayerFactory:
        kw = self.layer_kw
        return LayerFactory(
            linear=lambda i, o: SpikeSlabLinear(i, o, **kw),
            conv=lambda i, o, k, stride=1, padding=0: SpikeSlabConv2d(
                i, o, k, stride=stride, padding=padding, **kw
            ),
        )

    def make_optimizer(self, model: nn.Module, optimizer_factory) -> torch.optim.Optimizer:
        """The inclusion logits get ``pip_lr_scale`` times the learning rate: Adam moves a
        parameter by about lr per step whatever its gradient, and a logit has to travel several
        units (PIP 0.9 → 0.01 is 6.7) for the PIPs to settle near 0 or 1."""
        logits = [p for n, p in model.named_parameters() if n.endswith("inclusion_logit")]
        ids = {id(p) for p in logits}
        rest = [p for p in model.parameters() if id(p) not in ids]
        lr = optimizer_factory.keywords.get("lr", 1e-3)
        groups = [{"params": rest}, {"params": logits, "lr": lr * self.pip_lr_scale}]
        return optimizer_factory(groups)

    def loss_terms(self, model: nn.Module, step: StepInfo) -> dict[str, torch.Tensor]:
        return {"kl": kl_divergence(model) / step.n_train}

    def native_masks(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Keep the outgoing weights of every node with PIP ≥ ``threshold``."""
        return pip_masks(model, self.threshold)

    def describe(self) -> dict:
        return {
            "method": self.name,
            **self.layer_kw,
            "threshold": self.threshold,
            "pip_lr_scale": self.pip_lr_scale,
            "eval_samples": self.eval_samples,
        }
