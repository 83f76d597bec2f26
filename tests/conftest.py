"""Fixtures: tiny datasets written in the real on-disk formats (idx files, CIFAR pickle batches),
so the real loaders run; and a helper that composes the real Hydra config."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from bbbprune.data.registry import IDX_FILES, _write_idx


def write_tiny_idx(folder: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> None:
    """MNIST-format idx files whose images carry their label as a bright 4x4 block, so that
    even a one-epoch model learns something."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def make(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            r, c = divmod(int(label), 5)
            x[i, 4 + 8 * r : 8 + 8 * r, 2 + 5 * c : 6 + 5 * c] = 250
        return x, y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    for name, arr in zip(IDX_FILES, (xtr, ytr, xte, yte), strict=True):
        _write_idx(folder / name, arr)


def write_tiny_cifar(folder: Path, per_batch: int = 20, seed: int = 0) -> None:
    """CIFAR-10 python pickle batches (data_batch_1..5, test_batch, batches.meta)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, per_batch).tolist(),
            "batch_label": name,
            "filenames": [f"{i}.png" for i in range(per_batch)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(
            {
                "label_names": [f"class{i}" for i in range(10)],
                "num_cases_per_batch": per_batch,
                "num_vis": 3072,
            },
            fh,
        )


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    write_tiny_idx(root / "MNIST" / "raw", seed=0)
    write_tiny_idx(root / "FashionMNIST" / "raw", seed=1)
    write_tiny_cifar(root / "cifar-10-batches-py")
    return root


def smoke_overrides(tmp_path: Path, data_root: Path) -> list[str]:
    """Overrides that point a composed config at the tiny data and a temporary run store."""
    return [
        "scale=smoke",
        "device=cpu",
        f"paths.data={data_root}",
        f"paths.runs={tmp_path / 'runs'}",
        f"paths.results={tmp_path / 'results'}",
        "dataset.verify=false",
        "dataset.val_size=50",
        "dataset.sources=[]",
        "train.progress=false",
        "model.hidden=[32,16]",
        "train.batch_size=32",
    ]


def compose_config(overrides: list[str]):
    with initialize_config_module(config_module="bbbprune.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture
def smoke_cfg(tmp_path, data_root):
    """``smoke_cfg(*overrides)`` → a composed config for a seconds-long run on tiny data."""

    def make(*overrides):
        return compose_config(smoke_overrides(tmp_path, data_root) + list(overrides))

    return make
