"""Predictions and metrics: test error (%), accuracy, negative log-likelihood.

Prediction modes: ``mean`` — one deterministic pass (posterior-mean weights for Bayesian layers,
dropout off); ``sampled`` — the predictive p(y|x) ≈ (1/S) Σ_s softmax(f(x; w_s)), w_s ~ q.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_metrics(log_probs: torch.Tensor, y: torch.Tensor) -> dict:
    """accuracy, error (%), and mean NLL = −(1/n) Σ log p(y_i | x_i)."""
    acc = (log_probs.argmax(-1) == y).float().mean().item()
    nll = F.nll_loss(log_probs, y).item()
    return {"accuracy": acc, "error": 100.0 * (1.0 - acc), "nll": nll}


ECE_BINS = 15


def calibration_metrics(log_probs: torch.Tensor, y: torch.Tensor, n_bins: int = ECE_BINS) -> dict:
    """Expected calibration error and Brier score of the predictive p = exp(log_probs).

    ECE (Naeini et al. 2015; Guo et al. 2017, Eq. 3): the n test points are split into
    ``n_bins`` equal-width bins of confidence max_k p_k; ECE = Σ_b (|B_b|/n) |acc(B_b) − conf(B_b)|
    (torchmetrics' MulticlassCalibrationError, norm l1). Brier score (Brier 1950, the original
    multi-class form): (1/n) Σ_i Σ_k (p_ik − 1[y_i = k])², between 0 and 2."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs = log_probs.exp().float()
    ece = multiclass_calibration_error(probs, y, probs.shape[-1], n_bins=n_bins, norm="l1")
    onehot = F.one_hot(y, probs.shape[-1]).to(probs.dtype)
    brier = (probs - onehot).square().sum(-1).mean()
    return {"ece": ece.item(), "brier": brier.item()}


def predictive_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """H[p(y|x)] = −Σ_k p_k log p_k in nats, per example (0 · log 0 taken as 0)."""
    return -(log_probs.exp() * log_probs.clamp_min(torch.finfo(log_probs.dtype).min)).sum(-1)


def ood_metrics(log_probs_in: torch.Tensor, log_probs_out: torch.Tensor) -> dict:
    """Out-of-distribution detection by predictive entropy: the mean entropy of in- and
    out-of-distribution inputs and the AUROC of entropy as a score for "out" (positives) against
    "in" (negatives): the probability that a random OOD input has the higher entropy, ties
    counting one half (torchmetrics' binary AUROC)."""
    from torchmetrics.functional.classification import binary_auroc

    h_in, h_out = predictive_entropy(log_probs_in), predictive_entropy(log_probs_out)
    scores = torch.cat([h_in, h_out]).float()
    labels = torch.cat([torch.zeros(len(h_in)), torch.ones(len(h_out))]).long()
    return {
        "ood_auroc": binary_auroc(scores, labels).item(),
        "entropy_in": h_in.mean().item(),
        "entropy_ood": h_out.mean().item(),
    }
