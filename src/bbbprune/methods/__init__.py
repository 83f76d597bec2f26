"""Methods: what each adds to the common trainer (layers, loss terms, pruning criteria)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .base import Method, StepInfo
from .bbb import BayesByBackprop
from .deterministic import Deterministic
from .emmcmc import EMMCMC
from .sparse_vd import SparseVD
from .ssvi import SpikeSlabVI

__all__ = [
    "BayesByBackprop",
    "Deterministic",
    "EMMCMC",
    "Method",
    "SparseVD",
    "SpikeSlabVI",
    "StepInfo",
    "build_method",
]


def build_method(cfg: DictConfig) -> Method:
    """Instantiate the method from its config (``_target_``); ``optimizer`` is left to the trainer."""
    resolved = OmegaConf.to_container(cfg, resolve=True)  # e.g. emmcmc's epochs: ${train.epochs}
    node = OmegaConf.create({k: v for k, v in resolved.items() if k != "optimizer"})
    return instantiate(node, _convert_="all")
