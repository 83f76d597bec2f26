"""Predictions of a network in a prediction mode.

``mean`` — one deterministic pass (posterior-mean weights for Bayesian layers,
dropout off); ``sampled`` — the predictive p(y|x) ≈ (1/S) Σ_s softmax(f(x; w_s)), w_s ~ q.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_choice
from ..metrics import classification_metrics
from .bayes import sampling

PREDICTION_MODES = ("mean", "sampled")


# Images per forward pass at evaluation. 10,000 at once made a LeNet-5 Sparse VD evaluation
# ~50x slower on a 2-core CPU (GBs of conv activations, page faults); 1,000 stays in memory.
EVAL_BATCH = 1000


@torch.no_grad()
def predict_log_probs(
    model: nn.Module,
    x: torch.Tensor,
    mode: str = "mean",
    samples: int = 10,
    batch_size: int = EVAL_BATCH,
) -> torch.Tensor:
    """Log predictive probabilities, shape (n, classes): log (1/S) Σ_s softmax(f(x; w_s)) over
    the S passes of ``predict_outputs`` (S = 1 for ``mean``)."""
    outputs = predict_outputs(model, x, mode, samples, batch_size)
    return torch.logsumexp(F.log_softmax(outputs, dim=-1), dim=0) - math.log(len(outputs))


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
    batch_size: int = EVAL_BATCH,
) -> torch.Tensor:
    """Raw network outputs, shape (S, n, outputs): one pass (S = 1) for ``mean``, S weight
    draws for ``sampled`` (the regression predictive of bbbprune.layers.likelihoods.Gaussian)."""
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
