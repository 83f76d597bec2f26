"""The interface through which a method plugs into the common trainer, pruning and evaluation.

A method supplies: the layers its networks are built from, extra loss terms added to the data
term, the pruning criteria it supports (score functions live in bbbprune.pruning.criteria), the prediction
modes it reports, and optionally its own optimizer, an end-of-epoch step (e.g. an EM update that
removes groups), its own predictive (e.g. an ensemble of snapshots) and state that must survive a
resume. The trainer knows nothing else about it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..layers.predict import predict_log_probs, predict_outputs
from ..nets.factory import LayerFactory


@dataclass(frozen=True)
class StepInfo:
    """Where a minibatch sits: batch ``index`` is 1-based among ``n_batches`` (M) in an epoch."""

    epoch: int
    index: int
    n_batches: int
    n_train: int


class Method:
    """Base method: deterministic layers, no extra loss, magnitude/random pruning, mean prediction."""

    criteria: tuple[str, ...] = ("magnitude", "random")
    prediction_modes: tuple[str, ...] = ("mean",)
    trains: bool = True  # False: a post-hoc method (fit_posterior instead of training epochs)
    train_samples: int = 1  # Monte Carlo forward passes per training step
    eval_samples: int = 1  # forward passes averaged by the "sampled" prediction mode

    def __init__(self, name: str, dropout: float = 0.0, criteria=None):
        if not 0.0 <= float(dropout) < 1.0:
            raise UserError(f"method.dropout must be in [0, 1), got {dropout}")
        self.name = name
        self.dropout = float(dropout)
        if criteria is not None:
            self.criteria = tuple(criteria)

    def layer_factory(self) -> LayerFactory:
        raise NotImplementedError

    def loss_terms(self, model: nn.Module, step: StepInfo) -> dict[str, torch.Tensor]:
        """Terms added to the mean cross-entropy of the minibatch (per-example units)."""
        return {}

    def make_optimizer(self, model: nn.Module, optimizer_factory) -> torch.optim.Optimizer:
        return optimizer_factory(model.parameters())

    def on_epoch_end(self, model: nn.Module, optimizer, epoch: int) -> dict:
        """Called after every training epoch (``epoch`` 0-based), before validation; returns
        numbers to log in that epoch's history (e.g. groups removed). State that must survive a
        resume belongs in the model's buffers, the optimizer state or ``state_dict``."""
        return {}

    def epoch_scalars(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Numbers that describe the method after epoch ``epoch`` (0-based), written to that
        epoch's history and sent to the trackers (e.g. the KL weight of a warm-up). Reads only:
        no change to the model and no random numbers drawn."""
        return {}

    def on_init_from(self, model: nn.Module) -> None:
        """Called once the point weights were copied from a trained network (train.init_from, bbbprune.run.init_from),
        e.g. to set the initial posterior σ from them (MOPED)."""

    def fit_posterior(self, model: nn.Module, data, batch_size: int) -> dict:
        """A method that trains nothing (``trains = False``) fits its posterior to the trained
        weights here, once, instead of the training epochs; returns numbers for the history."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Method state saved in the checkpoint beside the model (e.g. posterior snapshots)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise UserError(f"method {self.name} has no state to load, got {sorted(state)}")

    def predict_log_probs(self, model: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
        """Log predictive probabilities for prediction ``mode`` (one of ``prediction_modes``)."""
        return predict_log_probs(model, x, mode, self.eval_samples)

    def predict_outputs(self, model: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
        """Raw outputs of prediction ``mode``, shape (S, n, outputs) (regression predictive)."""
        return predict_outputs(model, x, mode, self.eval_samples)

    def native_masks(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The method's own pruning rule (e.g. Sparse VD's log α ≥ 3) as masks by layer name;
        None for methods that are pruned only by a criterion at a chosen fraction."""
        return None

    def describe(self) -> dict:
        """What the records say about this method."""
        return {"method": self.name}
