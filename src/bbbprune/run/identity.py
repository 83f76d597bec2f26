"""Run identity: the name of a training run's directory.

A run is identified by a hash of everything that changes its numbers: the method (its class and
options), the dataset, the model, the training settings, the seed, the package version and the
version of this identity scheme (docs/runs.md). Settings that do not change numbers (where the
data live, progress bars, resuming) are left out, and so are import paths: a ``_target_``
enters as the name of the class or function it points to, so moving a module keeps every run
name. ``make reproduce-tables`` skips a run whose directory already holds a finished
``metrics.json``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import __version__
from ..errors import UserError
from ..storage import sha256_file

IDENTITY_VERSION = 2  # 2: ``_target_`` by the name it points to, not its import path
DATASET_KEYS_IGNORED = ("root", "verify", "sources")
TRAIN_KEYS_IGNORED = ("resume", "progress", "force", "distributed", "lock")


def _without_import_paths(node):
    """``node`` with every ``_target_`` (a dotted import path) cut to its last part, the class
    or function name: ``bbbprune.methods.BayesByBackprop`` and
    ``bbbprune.methods.bbb.BayesByBackprop`` name the same class and give the same run."""
    if isinstance(node, dict):
        return {
            k: v.rsplit(".", 1)[-1]
            if k == "_target_" and isinstance(v, str)
            else _without_import_paths(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_without_import_paths(v) for v in node]
    return node


def training_identity(cfg: DictConfig) -> dict:
    """What the run's name hashes: everything that changes its numbers (module docstring)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    return _without_import_paths(
        {
            "identity": IDENTITY_VERSION,
            "version": __version__,
            "method": c["method"],
            "dataset": {k: v for k, v in c["dataset"].items() if k not in DATASET_KEYS_IGNORED},
            "model": c["model"],
            "train": _train_identity(cfg, c["train"]),
            "seed": c["seed"],
        }
    )


def _train_identity(cfg: DictConfig, train: dict) -> dict:
    """The training options that change results. ``init_from`` is left out when unset; when set
    it enters as the source run's name (which carries the source's own identity)."""
    out = {k: v for k, v in train.items() if k not in TRAIN_KEYS_IGNORED and k != "init_from"}
    if train.get("init_from"):
        out["init_from"] = source_identity(cfg)
    return out


def model_label(model_cfg) -> str:
    """A short name for an architecture: mlp-400-400, lenet5-20-50-500, resnet20-16-32-64."""
    if model_cfg.get("source") == "torchvision":  # tv-resnet18
        return f"tv-{model_cfg['name']}"
    if model_cfg["name"] == "mlp":
        return "mlp-" + "-".join(str(int(h)) for h in model_cfg["hidden"])
    if "widths" in model_cfg:  # resnet20-16-32-64
        return f"{model_cfg['name']}-" + "-".join(str(int(w)) for w in model_cfg["widths"])
    return (
        f"{model_cfg['name']}-"
        + "-".join(str(int(c)) for c in model_cfg["conv"])
        + f"-{int(model_cfg['fc'])}"
    )


def run_key(cfg: DictConfig) -> str:
    blob = json.dumps(training_identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run_directory(cfg: DictConfig) -> Path:
    """``<method>-<dataset>-<model>-<scale>-s<seed>-<key>``, e.g. bbb-mnist-mlp-400-400-smoke-s0-
    1a2b3c4d5e: the scale tells smoke runs from real ones at a glance. The experiment is left out
    so that experiments share identical runs (``bbbprune runs`` shows it). A run trained before
    the scale entered the name keeps its directory."""
    head = f"{cfg.method.name}-{cfg.dataset.name}-{model_label(cfg.model)}"
    tail = f"s{cfg.seed}-{run_key(cfg)}"
    root = Path(cfg.paths.runs)
    legacy = root / f"{head}-{tail}"
    scale = cfg.get("scale", {}).get("name") if cfg.get("scale") else None
    if legacy.is_dir() or not scale:
        return legacy
    return root / f"{head}-{scale}-{tail}"


STATE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")  # train.init_from files (bbbprune.run.init_from)


def source_identity(cfg: DictConfig) -> str:
    """What enters a run's identity for ``train.init_from``: the source run directory's name
    (which carries its hash), or a file's name and the hash of its bytes."""
    source = source_run_directory(cfg)
    if source.is_file():
        return f"{source.name}-{sha256_file(source)[:10]}"
    return source.name


def _method_configs() -> Path:
    """conf/method of the installed package (editable installs: the repository's conf/)."""
    import bbbprune.conf

    return Path(bbbprune.conf.__file__).parent / "method"


def source_run_directory(cfg: DictConfig) -> Path:
    """The run directory ``cfg.train.init_from`` points to (see the module docstring)."""
    spec = str(cfg.train.init_from)
    if Path(spec).suffix in STATE_SUFFIXES and not Path(spec).is_file():
        raise UserError(f"train.init_from: no such file {spec}")
    if "/" in spec or "\\" in spec or Path(spec).is_file():
        return Path(spec)
    path = _method_configs() / f"{spec}.yaml"
    if not path.exists():
        raise UserError(
            f"train.init_from={spec!r} is neither a run directory nor a method config "
            f"(conf/method/{spec}.yaml)"
        )
    source = copy.deepcopy(cfg)
    OmegaConf.set_struct(source, False)
    source.method = OmegaConf.load(path)
    source.train.init_from = None
    return run_directory(source)
