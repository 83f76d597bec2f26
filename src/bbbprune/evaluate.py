"""Predictions and metrics: test error (%), accuracy, negative log-likelihood.

Prediction modes: ``mean`` — one deterministic pass (posterior-mean weights for Bayesian layers,
dropout off); ``sampled`` — the predictive p(y|x) ≈ (1/S) Σ_s softmax(f(x; w_s)), w_s ~ q.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import check_choice
from .layers import sampling

PREDICTION_MODES = ("mean", "sampled")


@torch.no_grad()
def predict_log_probs(
    model: nn.Module,
    x: torch.Tensor,
    mode: str = "mean",
    samples: int = 10,
    batch_size: int = 10000,
) -> torch.Tensor:
    """Log predictive probabilities, shape (n, classes)."""
    check_choice("prediction mode", mode, PREDICTION_MODES)
    was_training = model.training
    model.eval()
    out = []
    try:
        with sampling(model, mode == "sampled"):
            for start in range(0, len(x), batch_size):
                xb = x[start : start + batch_size]
                if mode == "mean":
                    out.append(F.log_softmax(model(xb), dim=-1))
                else:
                    lp = torch.stack([F.log_softmax(model(xb), dim=-1) for _ in range(samples)])
                    out.append(torch.logsumexp(lp, dim=0) - math.log(samples))
    finally:
        model.train(was_training)
    return torch.cat(out)


def classification_metrics(log_probs: torch.Tensor, y: torch.Tensor) -> dict:
    """accuracy, error (%), and mean NLL = −(1/n) Σ log p(y_i | x_i)."""
    acc = (log_probs.argmax(-1) == y).float().mean().item()
    nll = F.nll_loss(log_probs, y).item()
    return {"accuracy": acc, "error": 100.0 * (1.0 - acc), "nll": nll}


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str = "mean", samples: int = 10
) -> dict:
    return classification_metrics(predict_log_probs(model, x, mode, samples), y)


@torch.no_grad()
def predict_outputs(
    model: nn.Module,
    x: torch.Tensor,
    mode: str = "mean",
    samples: int = 10,
    batch_size: int = 10000,
) -> torch.Tensor:
    """Raw network outputs, shape (S, n, outputs): one pass (S = 1) for ``mean``, S weight
    draws for ``sampled`` (the regression predictive of bbbprune.likelihoods.Gaussian)."""
    check_choice("prediction mode", mode, PREDICTION_MODES)
    was_training = model.training
    model.eval()
    passes = 1 if mode == "mean" else samples
    out = []
    try:
        with sampling(model, mode == "sampled"):
            for start in range(0, len(x), batch_size):
                xb = x[start : start + batch_size]
                out.append(torch.stack([model(xb) for _ in range(passes)]))
    finally:
        model.train(was_training)
    return torch.cat(out, dim=1)
