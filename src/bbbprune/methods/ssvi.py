"""Spike-and-slab variational inference with node inclusion probabilities (Saha, Liu & Liang
2024; Bai, Song & Cheng 2020): the layers and the derivation are in bbbprune.layers.spike_slab
and docs/ssvi.md."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..layers.bayes import kl_divergence
from ..layers.spike_slab import SpikeSlabConv2d, SpikeSlabLinear, spike_slab_layers
from ..nets.factory import LayerFactory
from ..pruning.thresholds import pip_masks
from .base import Method, StepInfo
from .sparse_vd import kl_warmup_weight


class SpikeSlabVI(Method):
    """Minibatch loss in per-example units (the negative ELBO divided by the training-set size N):

        NLL_mean + Σ KL / N,

    with Σ KL the exact KL of every layer (Bernoulli KL of each node's indicator plus the
    inclusion-weighted Gaussian KL of its outgoing weights), summed over the network, not
    averaged. Prediction: ``mean`` uses the posterior-mean weights γ_j μ_ij (with the masks of
    the pruning rule, if any), ``sampled`` averages ``eval_samples`` draws of hard indicators
    z ~ Bernoulli(γ) and weights, ``conditional`` is one pass with the posterior-mean weights
    of the submodel the pruning mask selects, E_q[W | z_j = 1 for kept nodes, 0 for removed
    ones] = μ on the kept columns (unpruned: every node in). A pruned network is one submodel,
    so ``conditional`` is its prediction (for the median-probability model, Barbieri & Berger
    2004, the posterior mean given that model), while ``mean`` averages over the indicators too.
    Pruning: the method's own rule keeps a node iff its PIP γ_j ≥ ``threshold``
    (median-probability model at 0.5), input features included; the criterion ``pip`` sweeps
    fractions by PIP rank.

    Schedules (all off by default): the KL weight rises linearly to 1 over the first
    ``kl_warmup_epochs`` epochs (as Sparse VD's warm-up); the relaxation's temperature falls
    geometrically from ``temperature`` to ``temperature_final`` over the first ``anneal_epochs``
    epochs (a lower τ makes z̃ closer to the Bernoulli z the PIP describes); with
    ``straight_through`` the forward pass uses the hard z = 1{z̃ > ½}, an exact Bernoulli(γ)
    draw, and the backward pass the gradient of z̃ (Bengio et al. 2013; Jang et al. 2017), so
    the network trains on exactly the model whose PIPs the pruning rule reads."""

    criteria = ("pip", "magnitude", "random")
    prediction_modes = ("mean", "sampled", "conditional")

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
        kl_warmup_epochs: int = 0,
        temperature_final: float | None = None,
        anneal_epochs: int = 0,
        straight_through: bool = False,
        select_inputs: bool = True,
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
            straight_through=bool(straight_through),
        )
        self.threshold = float(threshold)
        self.select_inputs = bool(select_inputs)
        self.kl_warmup_epochs, self.anneal_epochs = int(kl_warmup_epochs), int(anneal_epochs)
        if self.kl_warmup_epochs < 0 or self.anneal_epochs < 0:
            raise UserError(
                "method.kl_warmup_epochs and method.anneal_epochs must be >= 0, got "
                f"{kl_warmup_epochs} and {anneal_epochs}"
            )
        final = temperature if temperature_final is None else temperature_final
        if not float(final) > 0:
            raise UserError(f"method.temperature_final must be > 0, got {temperature_final}")
        self.temperature_final = float(final)
        if not float(pip_lr_scale) > 0:
            raise UserError(f"method.pip_lr_scale must be > 0, got {pip_lr_scale}")
        self.pip_lr_scale = float(pip_lr_scale)
        self.eval_samples = int(eval_samples)
        SpikeSlabLinear(1, 1, **self.layer_kw)  # fail now on bad settings, not mid-training

    def layer_factory(self) -> LayerFactory:
        """Spike-and-slab layers; with ``select_inputs=False`` the first layer built (the one
        reading the network inputs) has no indicators (z = 1 for every input: no feature
        selection, the hidden neurons are still selected)."""
        built = []

        def kw():
            first = not built
            built.append(True)
            return {**self.layer_kw, "node_indicators": self.select_inputs or not first}

        return LayerFactory(
            linear=lambda i, o: SpikeSlabLinear(i, o, **kw()),
            conv=lambda i, o, k, stride=1, padding=0: SpikeSlabConv2d(
                i, o, k, stride=stride, padding=padding, **kw()
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

    def temperature_at(self, epoch: int) -> float:
        """τ of epoch ``epoch`` (0-based): τ₀ (τ_final/τ₀)^min(epoch/anneal_epochs, 1)."""
        tau0 = self.layer_kw["temperature"]
        if self.anneal_epochs == 0:
            return self.temperature_final
        progress = min(epoch / self.anneal_epochs, 1.0)
        return tau0 * (self.temperature_final / tau0) ** progress

    def kl_weight(self, epoch: int) -> float:
        """Linear KL warm-up: epoch/kl_warmup_epochs (0-based epoch), capped at 1 (always 1
        without warm-up)."""
        return kl_warmup_weight(epoch, 0, self.kl_warmup_epochs)

    def loss_terms(self, model: nn.Module, step: StepInfo) -> dict[str, torch.Tensor]:
        """The KL / N term (times the warm-up weight). Also sets the epoch's temperature in every
        layer; it takes effect from the next forward pass, so each epoch's first step still uses
        the previous epoch's τ."""
        tau = self.temperature_at(step.epoch)
        for layer in spike_slab_layers(model).values():
            layer.temperature = tau
        return {"kl": self.kl_weight(step.epoch) * kl_divergence(model) / step.n_train}

    def epoch_scalars(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """The KL warm-up weight and the Concrete temperature τ of epoch ``epoch``."""
        return {"kl_weight": self.kl_weight(epoch), "temperature": self.temperature_at(epoch)}

    def predict_outputs(self, model: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
        if mode != "conditional":
            return super().predict_outputs(model, x, mode)
        layers = spike_slab_layers(model).values()
        try:
            for layer in layers:
                layer.given_mask = True
            return super().predict_outputs(model, x, "mean")
        finally:
            for layer in layers:
                layer.given_mask = False

    def predict_log_probs(self, model: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
        if mode != "conditional":
            return super().predict_log_probs(model, x, mode)
        return torch.log_softmax(self.predict_outputs(model, x, mode)[0], dim=-1)

    def native_masks(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Keep the outgoing weights of every node with PIP ≥ ``threshold``."""
        return pip_masks(model, self.threshold)

    def describe(self) -> dict:
        return {
            "method": self.name,
            **self.layer_kw,
            "threshold": self.threshold,
            "select_inputs": self.select_inputs,
            "kl_warmup_epochs": self.kl_warmup_epochs,
            "temperature_final": self.temperature_final,
            "anneal_epochs": self.anneal_epochs,
            "pip_lr_scale": self.pip_lr_scale,
            "eval_samples": self.eval_samples,
        }
