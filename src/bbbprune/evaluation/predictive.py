"""Metrics of a method's predictive on a split of the data: error, NLL, and for classification
ECE, Brier score and out-of-distribution detection (bbbprune.metrics)."""

from __future__ import annotations

from torch import nn

from ..layers.likelihoods import CATEGORICAL
from ..methods import Method
from ..metrics import calibration_metrics, classification_metrics, ood_metrics


def method_metrics(
    method: Method, model: nn.Module, x, y, mode: str, likelihood=CATEGORICAL
) -> dict:
    """Accuracy, error and NLL of the method's predictive ``mode`` on (x, y) (regression: the
    likelihood's metrics, bbbprune.layers.likelihoods)."""
    return likelihood.metrics(method, model, x, y, mode)


def uncertainty_metrics(method: Method, model: nn.Module, data, ood_x, mode: str) -> dict:
    """Error, NLL, ECE and Brier score of the predictive ``mode`` on the test set and, given
    out-of-distribution images ``ood_x``, the predictive entropy and OOD AUROC."""
    if data.likelihood is not CATEGORICAL:  # regression: the likelihood's own metrics
        return method_metrics(method, model, data.x_test, data.y_test, mode, data.likelihood)
    log_probs = method.predict_log_probs(model, data.x_test, mode)
    out = {
        **classification_metrics(log_probs, data.y_test),
        **calibration_metrics(log_probs, data.y_test),
    }
    if ood_x is not None:
        out.update(ood_metrics(log_probs, method.predict_log_probs(model, ood_x, mode)))
    return out


def validation_metrics(method: Method, model: nn.Module, data, mode: str) -> dict:
    """The predictive ``mode``'s metrics on the validation split, keys prefixed ``val_`` (e.g.
    ``val_error``): what a choice among runs (a prior, a threshold) may look at; the test set
    is for reporting only."""
    found = method_metrics(method, model, data.x_val, data.y_val, mode, data.likelihood)
    return {f"val_{k}": v for k, v in found.items()}
