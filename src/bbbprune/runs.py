"""Run directories: identity of a training run, its checkpoint, and rebuilding its model.

A run is identified by a hash of everything that changes its training (method, dataset,
model, training settings, seed, package version); ``make reproduce-tables`` skips a run whose
directory already holds a finished ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import __version__
from .errors import UserError, check_choice
from .methods import Method, build_method
from .models import build_model
from .storage import load_checkpoint

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CONFIG = "config.yaml"
RECORDS = "records"
DATASET_KEYS_IGNORED = ("root", "verify", "sources")
TRAIN_KEYS_IGNORED = ("resume", "progress", "force", "distributed")


def _training_identity(cfg: DictConfig) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True)
    return {
        "version": __version__,
        "method": c["method"],
        "dataset": {k: v for k, v in c["dataset"].items() if k not in DATASET_KEYS_IGNORED},
        "model": c["model"],
        "train": _train_identity(cfg, c["train"]),
        "seed": c["seed"],
    }


def _train_identity(cfg: DictConfig, train: dict) -> dict:
    """The training options that change results. ``init_from`` (added later) is left out when
    unset, so that older runs keep their hash; when set it enters as the source run's name."""
    out = {k: v for k, v in train.items() if k not in TRAIN_KEYS_IGNORED and k != "init_from"}
    if train.get("init_from"):
        from .pretrained import source_identity

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
    blob = json.dumps(_training_identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run_directory(cfg: DictConfig) -> Path:
    name = (
        f"{cfg.method.name}-{cfg.dataset.name}-{model_label(cfg.model)}-s{cfg.seed}-{run_key(cfg)}"
    )
    return Path(cfg.paths.runs) / name


def resolve_device(name: str) -> torch.device:
    check_choice("device", name, ("auto", "cpu", "cuda"))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA device is available; use device=auto or cpu")
    return torch.device(name)


def model_spec(cfg: DictConfig, input_shape, n_classes: int, method: Method) -> dict:
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    spec.update(input_shape=list(input_shape), n_classes=int(n_classes), dropout=method.dropout)
    return spec


def check_compatible(state: dict, method: Method, spec: dict, path: Path) -> None:
    """A checkpoint of another method or architecture is refused with a clear message."""
    if state.get("format") != "bbbprune-checkpoint-1":
        raise UserError(f"{path} is not a bbbprune checkpoint")
    if state["method"] != method.name or state["model_spec"] != spec:
        raise UserError(
            f"checkpoint {path} holds method={state['method']} "
            f"model={model_label(state['model_spec'])}, not method={method.name} "
            f"model={model_label(spec)}"
        )


def load_run(run_dir: Path, device: torch.device | None = None):
    """Config, method, model (with trained weights) and metrics of a finished run."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG})")
    cfg = OmegaConf.load(run_dir / CONFIG)
    state = load_checkpoint(run_dir / CHECKPOINT)
    method = build_method(cfg.method)
    spec = state["model_spec"]
    check_compatible(state, method, spec, run_dir / CHECKPOINT)
    model = build_model(spec, method.layer_factory())
    model.load_state_dict(state["model"])
    method.load_state_dict(state.get("method_state") or {})
    if device is not None:
        model.to(device)
    return cfg, method, model, state
