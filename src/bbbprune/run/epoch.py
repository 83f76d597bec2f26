"""One epoch of training, the same for every method: the method adds its loss terms to the
likelihood's data term; data stay on the device and are batched by index."""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tensors import TensorData
from ..errors import UserError
from ..methods import Method, StepInfo
from .distributed import SINGLE, Shard


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def run_epoch(
    model: nn.Module,
    method: Method,
    optimizer,
    data: TensorData,
    batch_size: int,
    shuffle: torch.Generator,
    epoch: int,
    progress: bool = False,
    shard: Shard = SINGLE,
) -> dict:
    """One pass over the training set in a random order; returns mean loss and accuracy, and the
    mean of each part of the loss: ``train_nll`` (the data term) and ``train_<name>`` for each of
    the method's terms (``train_kl``: the KL/N term as weighted in that step). Under DDP (distributed.py) this rank trains on its shard of every global minibatch."""
    model.train()
    n, x_all, y_all = data.n_train, data.x_train, data.y_train
    perm = torch.randperm(n, generator=shuffle).to(x_all.device)
    n_batches = math.ceil(n / batch_size)
    samples = method.train_samples
    loss_sum = torch.zeros((), device=x_all.device)
    correct = torch.zeros((), device=x_all.device, dtype=torch.long)
    part_sums: dict[str, torch.Tensor] = {}  # per loss term: Σ over examples (mean over samples)
    bar = tqdm(
        range(n_batches),
        desc=f"epoch {epoch + 1}",
        leave=False,
        disable=None if progress else True,
        mininterval=0.5,
    )  # None: off when not a tty
    for i in bar:
        idx = shard.batch(perm[i * batch_size : (i + 1) * batch_size])
        x, y = x_all[idx], y_all[idx]
        step = StepInfo(epoch, i + 1, n_batches, n)
        optimizer.zero_grad(set_to_none=True)
        loss, parts = None, {}
        for _ in range(samples):  # Monte Carlo samples per step (1 for point estimates)
            logits = model(x)
            term = data.likelihood.nll(logits, y)
            parts["nll"] = parts.get("nll", 0.0) + term.detach()
            for name, extra in method.loss_terms(model, step).items():
                term = term + extra
                parts[name] = parts.get(name, 0.0) + extra.detach()
            loss = term if loss is None else loss + term
        if samples > 1:
            loss = loss / samples
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += data.likelihood.n_correct(logits.detach(), y)
        for name, value in parts.items():
            part_sums[name] = part_sums.get(name, 0.0) + value * (len(idx) / samples)
        if progress and i % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    shard.sum(loss_sum)
    shard.sum(correct)
    for total in part_sums.values():
        shard.sum(total)
    mean_loss = (loss_sum / n).item()
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(
            f"training diverged at epoch {epoch + 1} (loss {mean_loss}); the last good "
            "checkpoint is kept — lower the learning rate or check the method settings"
        )
    parts = {f"train_{k}": float(v) / n for k, v in part_sums.items()}
    return {"train_loss": mean_loss, **parts, "train_accuracy": correct.item() / n}
