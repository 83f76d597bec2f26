"""Sparse variational dropout (Molchanov, Ashukha & Vetrov 2017) and its ARD and structured
(input-group) variants; the layers are in bbbprune.layers.sparse_vd."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError, check_choice
from ..layers.sparse_vd import (
    PRIORS,
    Conv2dSVD,
    Conv2dSVDGroup,
    LinearSVD,
    LinearSVDGroup,
    sparse_vd_kl,
)
from ..nets.factory import LayerFactory
from ..pruning.thresholds import threshold_masks
from .base import Method, StepInfo


def kl_warmup_weight(epoch: int, start: int, end: int) -> float:
    """rw = clip((epoch − start) / (end − start), 0, 1), with ``epoch`` 0-based and constant over
    an epoch: 0 for epochs < start, then linear to 1 at epoch ``end`` (as in the authors' code:
    0 for epochs 0–4, 1 from epoch 20). With start == end it steps from 0 to 1 at ``start``."""
    if epoch < start:
        return 0.0
    if epoch >= end:
        return 1.0
    return (epoch - start) / (end - start)


class SparseVD(Method):
    """Minibatch loss in per-example units (the ELBO of Molchanov et al. 2017 with the KL
    warm-up of the authors' code, divided by the training-set size N):

        CE_mean + rw · Σ KL / N,

    the authors' (N/B)·Σ_batch CE + rw·Σ KL divided by the training-set size N. Σ KL is the sum
    over every weight (and group variable) of the approximation for the chosen prior
    (``log_uniform``: Sparse VD; ``ard``: Gaussian prior with optimal per-weight precision).
    ``input_groups=True`` adds a group variable per input neuron / channel (svd_group).

    Pruning criteria: ``log_alpha`` (highest log α removed first; fraction sweeps),
    ``magnitude`` (|θ|, or |θ·μ_z| with groups) and ``random``; the method's own fixed rule,
    log α ≥ ``threshold``, is bbbprune.pruning.thresholds.threshold_masks."""

    criteria = ("log_alpha", "magnitude", "random")
    prediction_modes = ("mean", "sampled")

    def __init__(
        self,
        name: str,
        prior: str = "log_uniform",
        input_groups: bool = False,
        log_sigma2_init: float = -10.0,
        threshold: float = 3.0,
        warmup_start: int = 5,
        warmup_end: int = 20,
        eval_samples: int = 10,
        criteria=None,
        dropout: float = 0.0,
    ):
        super().__init__(name, dropout, criteria)
        self.prior = check_choice("method.prior", prior, PRIORS)
        if not isinstance(input_groups, bool):
            raise UserError(f"method.input_groups must be true or false, got {input_groups!r}")
        self.input_groups = input_groups
        self.log_sigma2_init = float(log_sigma2_init)
        self.threshold = float(threshold)
        self.warmup_start, self.warmup_end = int(warmup_start), int(warmup_end)
        if not 0 <= self.warmup_start <= self.warmup_end:
            raise UserError(
                "method.warmup_start and method.warmup_end must satisfy 0 <= start <= end, got "
                f"{warmup_start} and {warmup_end}"
            )
        if int(eval_samples) < 1:
            raise UserError(f"method.eval_samples must be >= 1, got {eval_samples}")
        self.eval_samples = int(eval_samples)

    def layer_factory(self) -> LayerFactory:
        linear_cls, conv_cls = (
            (LinearSVDGroup, Conv2dSVDGroup) if self.input_groups else (LinearSVD, Conv2dSVD)
        )
        kw = dict(prior=self.prior, log_sigma2_init=self.log_sigma2_init)
        return LayerFactory(
            linear=lambda i, o, bias=True: linear_cls(i, o, bias=bias, **kw),
            conv=lambda i, o, k, stride=1, padding=0, **conv_kw: conv_cls(
                i, o, k, stride=stride, padding=padding, **conv_kw, **kw
            ),
        )

    def kl_weight(self, step: StepInfo) -> float:
        """The warm-up weight rw of the current epoch (per epoch, see kl_warmup_weight)."""
        return kl_warmup_weight(step.epoch, self.warmup_start, self.warmup_end)

    def loss_terms(self, model: nn.Module, step: StepInfo) -> dict[str, torch.Tensor]:
        rw = self.kl_weight(step)
        if rw == 0.0:  # skip computing a KL that is multiplied by zero
            return {"kl": torch.zeros((), device=next(model.parameters()).device)}
        return {"kl": sparse_vd_kl(model) * (rw / step.n_train)}

    def epoch_scalars(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """The epoch's KL warm-up weight rw and the share of prunable weights the method's own
        rule would remove now (log α ≥ ``threshold``)."""
        masks = self.native_masks(model)
        kept = sum(float(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        return {
            "kl_weight": kl_warmup_weight(epoch, self.warmup_start, self.warmup_end),
            "log_alpha_above_threshold": 1.0 - kept / max(total, 1),
        }

    def native_masks(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Molchanov et al.'s rule: remove every weight with log α ≥ ``threshold``."""
        return threshold_masks(model, self.threshold)

    def describe(self) -> dict:
        return {
            "method": self.name,
            "prior": self.prior,
            "input_groups": self.input_groups,
            "log_sigma2_init": self.log_sigma2_init,
            "threshold": self.threshold,
            "warmup_start": self.warmup_start,
            "warmup_end": self.warmup_end,
            "eval_samples": self.eval_samples,
        }
