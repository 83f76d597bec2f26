"""Likelihoods p(y | f(x)): the data term of every loss, and the test metrics that go with it.

The dataset chooses its likelihood (``dataset.likelihood``; image datasets leave it unset and
get the categorical one), so the trainer and the methods stay the same for classification and
regression. Both give the per-example negative log-likelihood of a minibatch, in the units the
methods' KL terms are written in (Σ KL / N is added to the *mean* NLL).

  * ``categorical`` — p(y | f) = softmax(f)_y: the mean cross-entropy. Metrics: accuracy, error
    (%) and NLL of the method's predictive (bbbprune.metrics.classification_metrics).
  * ``gaussian`` — p(y | f) = N(y; f, s²) with a fixed noise standard deviation s
    (``noise_std``): NLL = (y − f)² / (2 s²) + log s + ½ log 2π per example. Metrics of the
    predictive with S output draws f_1..f_S (S = 1 for the mean prediction): the point
    prediction ŷ = (1/S) Σ_s f_s; ``mse`` = mean (y − ŷ)², ``rmse`` = √mse, ``error`` = mse
    (the "test error" of the regression tables), and ``nll`` = −(1/n) Σ_i log (1/S) Σ_s
    N(y_i; f_s(x_i), s²), the Gaussian-mixture predictive. ``accuracy`` is NaN (undefined).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import UserError, check_choice
from ..metrics import classification_metrics
from .priors import LOG_SQRT_2PI


class Categorical:
    """Softmax likelihood for classification: the mean cross-entropy of the minibatch."""

    name = "categorical"

    def nll(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def n_correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(-1) == y).sum()

    def metrics(self, method, model, x: torch.Tensor, y: torch.Tensor, mode: str) -> dict:
        return classification_metrics(method.predict_log_probs(model, x, mode), y)


class Gaussian:
    """Homoscedastic Gaussian likelihood N(y; f(x), s²) with a fixed s for regression."""

    name = "gaussian"

    def __init__(self, noise_std: float = 1.0):
        if not float(noise_std) > 0:
            raise UserError(f"dataset.noise_std must be > 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.log_noise_std = math.log(self.noise_std)

    def log_density(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log N(y; f, s²) elementwise; f has shape (..., n, 1) or (..., n), y shape (n,)."""
        f = f.squeeze(-1)
        return -((y - f).square() / (2 * self.noise_std**2)) - self.log_noise_std - LOG_SQRT_2PI

    def nll(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -self.log_density(f, y).mean()

    def n_correct(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=torch.long, device=f.device)  # no accuracy in regression

    def metrics(self, method, model, x: torch.Tensor, y: torch.Tensor, mode: str) -> dict:
        draws = method.predict_outputs(model, x, mode)  # (S, n, 1)
        mean = draws.squeeze(-1).mean(0)
        mse = (y - mean).square().mean().item()
        log_pred = torch.logsumexp(self.log_density(draws, y), dim=0) - math.log(len(draws))
        return {
            "accuracy": math.nan,
            "error": mse,
            "mse": mse,
            "rmse": math.sqrt(mse),
            "nll": -log_pred.mean().item(),
        }


LIKELIHOODS = ("categorical", "gaussian")
CATEGORICAL = Categorical()


def build_likelihood(cfg) -> Categorical | Gaussian:
    """The likelihood a dataset config names (``likelihood``: categorical when absent)."""
    kind = check_choice("dataset.likelihood", cfg.get("likelihood") or "categorical", LIKELIHOODS)
    if kind == "categorical":
        return CATEGORICAL
    return Gaussian(float(cfg.get("noise_std", 1.0)))
