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


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    """ECE = Σ_b (|B_b|/n) |acc(B_b) − conf(B_b)| = (1/n) Σ_b |Σ_{i∈B_b} (1[ŷ_i = y_i] − conf_i)|,
    with conf_i = max_k p_ik and bin b = [b/n_bins, (b+1)/n_bins); a confidence of exactly 1
    gets a bin of its own (the binning of torchmetrics' MulticlassCalibrationError)."""
    conf, pred = probs.max(-1)
    gap = (pred == y).to(torch.float64) - conf.to(torch.float64)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=conf.dtype, device=conf.device)
    bins = torch.bucketize(conf, edges, right=True) - 1
    per_bin = torch.zeros(n_bins + 1, dtype=torch.float64, device=conf.device)
    per_bin.scatter_add_(0, bins, gap)
    return (per_bin.abs().sum() / len(conf)).item()


def calibration_metrics(log_probs: torch.Tensor, y: torch.Tensor, n_bins: int = ECE_BINS) -> dict:
    """Expected calibration error and Brier score of the predictive p = exp(log_probs).

    ECE (Naeini et al. 2015; Guo et al. 2017, Eq. 3): the n test points are split into
    ``n_bins`` equal-width bins of confidence max_k p_k (``expected_calibration_error``).
    Brier score (Brier 1950, the original multi-class form):
    (1/n) Σ_i Σ_k (p_ik − 1[y_i = k])², between 0 and 2."""
    probs = log_probs.exp().float()
    onehot = F.one_hot(y, probs.shape[-1]).to(probs.dtype)
    brier = (probs - onehot).square().sum(-1).mean()
    return {"ece": expected_calibration_error(probs, y, n_bins), "brier": brier.item()}


def predictive_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """H[p(y|x)] = −Σ_k p_k log p_k in nats, per example (0 · log 0 taken as 0)."""
    return -(log_probs.exp() * log_probs.clamp_min(torch.finfo(log_probs.dtype).min)).sum(-1)


def auroc(negatives: torch.Tensor, positives: torch.Tensor) -> float:
    """P(a random positive scores above a random negative), ties counting one half: the
    Mann-Whitney statistic U / (n_pos · n_neg), U = Σ ranks of the positives − n_pos(n_pos + 1)/2,
    ranks from 1 in the pooled sample with tied scores given their mean rank (equal to the
    area under the ROC curve with linear interpolation, as torchmetrics' binary AUROC)."""
    scores = torch.cat([negatives, positives]).to(torch.float64)
    _, inverse, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    below = torch.cumsum(counts, 0) - counts  # scores strictly below each distinct value
    mean_rank = below.to(torch.float64) + (counts.to(torch.float64) + 1) / 2
    n_pos, n_neg = len(positives), len(negatives)
    u = mean_rank[inverse[n_neg:]].sum() - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * n_neg)).item()


def ood_metrics(log_probs_in: torch.Tensor, log_probs_out: torch.Tensor) -> dict:
    """Out-of-distribution detection by predictive entropy: the mean entropy of in- and
    out-of-distribution inputs and the AUROC of entropy as a score for "out" (positives) against
    "in" (negatives): the probability that a random OOD input has the higher entropy, ties
    counting one half."""
    h_in, h_out = predictive_entropy(log_probs_in), predictive_entropy(log_probs_out)
    return {
        "ood_auroc": auroc(h_in.float(), h_out.float()),
        "entropy_in": h_in.mean().item(),
        "entropy_ood": h_out.mean().item(),
    }
