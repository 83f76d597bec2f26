"""Datasets as tensors on the device: train / validation / test splits, preprocessing."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError, check_choice
from ..layers.likelihoods import CATEGORICAL, build_likelihood
from .registry import DATASETS, DatasetSpec, provision
from .simulated import generate


@dataclass
class TensorData:
    """A dataset split into train / validation / test tensors, already on the device."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    likelihood: Any = field(default_factory=lambda: CATEGORICAL)  # bbbprune.layers.likelihoods

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        return len(self.x_train)


def _cifar_tensors(folder: Path, train: bool):
    """Read CIFAR-10 python pickle batches as torchvision's CIFAR10 does (its constructor also
    insists on the published md5s, which verify() checks separately)."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as fh:
            batch = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(batch["labels"] if "labels" in batch else batch["fine_labels"])
    return torch.from_numpy(np.concatenate(xs)), torch.as_tensor(ys, dtype=torch.int64)


def _raw_tensors(spec: DatasetSpec, root: Path, train: bool):
    if spec.name == "cifar10":
        return _cifar_tensors(spec.files_dir(root), train)
    ds = spec.torchvision_class(str(root), train=train, download=False)
    return ds.data.unsqueeze(1), ds.targets.to(torch.int64)


def load_tensors(cfg, device: torch.device | str = "cpu", log=print) -> TensorData:
    """Provision the dataset named in ``cfg`` and return it preprocessed on ``device``.

    ``cfg``: name, root, pixel_scale (pixels are divided by it: 255, or 126 as in Blundell et al.),
    mean/std (optional per-channel normalisation after scaling), val_size (the validation split is
    the last ``val_size`` images of the training set), train_subset (smoke runs), random_labels
    (optional: shuffle the training and validation labels; the test labels stay true), verify,
    sources. Generated datasets (``simulated``) are drawn by bbbprune.data.simulated instead.
    """
    if cfg.name == "simulated":
        return simulated_tensors(cfg, device)
    spec = DATASETS[check_choice("dataset", cfg.name, DATASETS)]
    root = Path(cfg.root)
    provision(cfg.name, root, tuple(cfg.sources), bool(cfg.verify), log=log)
    xtr, ytr = _raw_tensors(spec, root, train=True)
    xte, yte = _raw_tensors(spec, root, train=False)
    val = int(cfg.val_size)
    if not 0 < val < len(xtr):
        raise UserError(f"dataset.val_size={val} must be in (0, {len(xtr)})")
    xtr, ytr, xva, yva = xtr[:-val], ytr[:-val], xtr[-val:], ytr[-val:]
    if cfg.get("random_labels"):  # Zhang et al. 2017 / Molchanov Sec. 6: nothing to learn
        shuffle = torch.Generator().manual_seed(int(cfg.get("random_labels_seed", 0)))
        ytr = ytr[torch.randperm(len(ytr), generator=shuffle)]
        yva = yva[torch.randperm(len(yva), generator=shuffle)]
    if cfg.get("train_subset"):
        xtr, ytr = xtr[: int(cfg.train_subset)], ytr[: int(cfg.train_subset)]

    mean = torch.tensor(cfg.mean, dtype=torch.float32).view(1, -1, 1, 1) if cfg.get("mean") else 0.0
    std = torch.tensor(cfg.std, dtype=torch.float32).view(1, -1, 1, 1) if cfg.get("std") else 1.0

    def prep(x):
        return ((x.to(torch.float32) / float(cfg.pixel_scale) - mean) / std).to(device)

    n_classes = int(max(ytr.max(), yte.max()).item()) + 1 if spec.name != "cifar10" else 10
    n_classes = max(n_classes, 10)
    return TensorData(
        cfg.name,
        prep(xtr),
        ytr.to(device),
        prep(xva),
        yva.to(device),
        prep(xte),
        yte.to(device),
        n_classes,
    )


def simulated_tensors(cfg, device):
    """TensorData for ``dataset=simulated``: train, validation and test splits drawn with the
    seeds data_seed, data_seed + 1 and data_seed + 2."""

    d, p, alpha = int(cfg.D), int(cfg.relevant), float(cfg.alpha)
    seed, psi_min = int(cfg.data_seed), float(cfg.psi_min)
    splits = []
    for k, n in enumerate((cfg.n_train, cfg.n_val, cfg.n_test)):
        x, y = generate(d, p, alpha, int(n), seed + k, psi_min)
        splits += [torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)]
    return TensorData(cfg.name, *splits, n_classes=1, likelihood=build_likelihood(cfg))
