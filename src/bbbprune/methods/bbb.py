"""Bayes by Backprop (Blundell et al. 2015): factorised Gaussian posterior, Gaussian or
scale-mixture prior, KL weighted per minibatch, pruning by signal-to-noise ratio |μ|/σ."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError, check_choice
from ..layers import BayesConv2d, BayesLinear, bayes_layers, kl_divergence
from ..layers.priors import build_prior
from ..nets.factory import LayerFactory
from .base import Method, StepInfo

KL_WEIGHTINGS = ("uniform", "blundell")


def blundell_kl_weight(i: int, m: int) -> float:
    """π_i = 2^(M−i) / (2^M − 1) for minibatch i = 1..M (Blundell et al. 2015, Eq. 9).
    Written as 2^(−i) / (1 − 2^(−M)) so that large M does not overflow."""
    return math.ldexp(1.0, -i) / -math.expm1(-m * math.log(2.0))


def prior_fields(prior) -> dict:
    """The prior as explicit record fields (tables select on these, never on its repr): kind,
    pi, -log sigma1, -log sigma2 as configured; a Gaussian N(0, s^2) is pi = 1, sigma1 = s."""
    if prior["kind"] == "gaussian":
        return {
            "prior_kind": "gaussian",
            "prior_pi": 1.0,
            "prior_neg_log_sigma1": float(prior["neg_log_sigma"]),
            "prior_neg_log_sigma2": None,
        }
    return {
        "prior_kind": prior["kind"],
        "prior_pi": float(prior["pi"]),
        "prior_neg_log_sigma1": float(prior["neg_log_sigma1"]),
        "prior_neg_log_sigma2": float(prior["neg_log_sigma2"]),
    }


class BayesByBackprop(Method):
    """Minibatch i of M (per-example units, after dividing Blundell's Eq. 8 by the batch size B):

        F_i / B = π_i · KL(q ‖ p) / B − (1/B) Σ_{(x,y) ∈ D_i} log p(y | x, w)
                = CE_mean + (π_i · M) · KL / N,

    since N = M·B. With uniform weighting π_i = 1/M the KL term is KL/N; with Blundell's
    weighting it is π_i·M·KL/N: early minibatches carry most of the KL, and since Σ_i π_i = 1 the
    epoch as a whole weighs the KL exactly as uniform weighting does.
    The KL is a sum over every weight, divided by the training-set size N explicitly."""

    criteria = ("snr", "magnitude", "random")
    prediction_modes = ("mean", "sampled")

    def __init__(
        self,
        name: str,
        prior,
        rho_init: float = -5.0,
        kl_estimator: str = "mc",
        local_reparam: bool = False,
        kl_weighting: str = "uniform",
        train_samples: int = 1,
        eval_samples: int = 10,
        criteria=None,
        dropout=0.0,
        fused: bool = True,
        moped_delta: float | None = None,
        kl_scale: float = 1.0,
    ):
        super().__init__(name, dropout, criteria)
        if moped_delta is not None and not float(moped_delta) > 0:
            raise UserError(f"method.moped_delta must be > 0 or null, got {moped_delta}")
        self.moped_delta = None if moped_delta is None else float(moped_delta)
        if not float(kl_scale) >= 0:
            raise UserError(f"method.kl_scale must be >= 0, got {kl_scale}")
        self.kl_scale = float(kl_scale)
        self.prior_cfg = prior
        self.prior = build_prior(prior)
        self.rho_init = float(rho_init)
        self.kl_estimator = kl_estimator
        self.local_reparam = bool(local_reparam)
        self.fused = bool(fused)
        self.kl_weighting = check_choice("method.kl_weighting", kl_weighting, KL_WEIGHTINGS)
        if int(train_samples) < 1 or int(eval_samples) < 1:
            raise UserError("method.train_samples and method.eval_samples must be >= 1")
        self.train_samples = int(train_samples)
        self.eval_samples = int(eval_samples)
        # fail now, not at the first forward pass, if the estimator does not fit the prior
        BayesLinear(1, 1, self.prior, kl_estimator=kl_estimator)

    def layer_factory(self) -> LayerFactory:
        kw = dict(
            prior=self.prior,
            rho_init=self.rho_init,
            kl_estimator=self.kl_estimator,
            local_reparam=self.local_reparam,
            fused=self.fused,
        )
        return LayerFactory(
            linear=lambda i, o, bias=True: BayesLinear(i, o, bias=bias, **kw),
            conv=lambda i, o, k, stride=1, padding=0, **conv_kw: BayesConv2d(
                i, o, k, stride=stride, padding=padding, **conv_kw, **kw
            ),
        )

    def on_init_from(self, model: nn.Module) -> None:
        """With ``moped_delta`` δ, MOPED (Krishnan, Subedar & Tickoo 2020): the initial σ of
        every weight and bias is δ·|μ| of the trained value it starts from."""
        if self.moped_delta is None:
            return
        from ..nets.convert import set_sigma

        for layer in bayes_layers(model):
            set_sigma(layer, "bbb", lambda w: self.moped_delta * w.abs())

    def kl_weight(self, step: StepInfo) -> float:
        if self.kl_weighting == "uniform":
            return 1.0
        return blundell_kl_weight(step.index, step.n_batches) * step.n_batches

    def loss_terms(self, model: nn.Module, step: StepInfo) -> dict[str, torch.Tensor]:
        """The complexity cost of one minibatch per example: π_i · M · KL / N (Blundell et al.
        2015, eq. 8 divided by the batch size; π_i = 1/M when uniform), times ``kl_scale``
        (1 for the ELBO; other values only to diagnose an implementation that weighted it
        differently, e.g. ``+method.kl_scale=0.00256`` = KL / (N · M))."""
        weight = self.kl_weight(step) * self.kl_scale / step.n_train
        return {"kl": kl_divergence(model) * weight}

    def describe(self) -> dict:
        return {
            "method": self.name,
            "prior": repr(self.prior),
            **prior_fields(self.prior_cfg),
            "kl_weighting": self.kl_weighting,
            "train_samples": self.train_samples,
            "eval_samples": self.eval_samples,
            "fused": self.fused,
            **({"moped_delta": self.moped_delta} if self.moped_delta is not None else {}),
            **({"kl_scale": self.kl_scale} if self.kl_scale != 1.0 else {}),
        }
