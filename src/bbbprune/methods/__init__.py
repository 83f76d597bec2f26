"""Methods: what each adds to the common trainer (layers, loss terms, pruning criteria)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .base import Method, StepInfo
from .bbb import BayesByBackprop
from .deterministic import Deterministic
from .emmcmc import EMMCMC
from .laplace import LaplacePosterior
from .sparse_vd import SparseVD
from .ssvi import SpikeSlabVI

__all__ = [
    "BayesByBackprop",
    "Deterministic",
    "EMMCMC",
    "LaplacePosterior",
    "Method",
    "SparseVD",
    "SpikeSlabVI",
    "StepInfo",
    "build_method",
]


def build_method(cfg: DictConfig) -> Method:
    """Instantiate the method from its config (``_target_``); ``optimizer`` is left to the trainer."""
    # resolved first: interpolations into the root config (e.g. an experiment's
    # sparse_vd_warmup read by oc.select) would not resolve in a detached copy
    node = OmegaConf.to_container(cfg, resolve=True)
    node.pop("optimizer", None)
    return instantiate(OmegaConf.create(node), _convert_="all")
