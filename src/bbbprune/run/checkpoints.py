"""Checkpoints of a run: what a checkpoint holds, rebuilding a run's model from it, and the
random-number state that makes a resumed run end with the numbers of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import UserError
from ..methods import Method, build_method
from ..nets.models import build_model
from ..storage import load_checkpoint
from .identity import model_label


def rng_state(shuffle: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "bbbprune-checkpoint-1"


CONFIG = "config.yaml"


def model_spec(cfg: DictConfig, input_shape, n_classes: int, method: Method) -> dict:
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    spec.update(input_shape=list(input_shape), n_classes=int(n_classes), dropout=method.dropout)
    return spec


def check_compatible(state: dict, method: Method, spec: dict, path: Path) -> None:
    """A checkpoint of another method or architecture is refused with a clear message."""
    if state.get("format") != CHECKPOINT_FORMAT:
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
