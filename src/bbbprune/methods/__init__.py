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
    "METHODS",
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


# The methods, one config file each (conf/method/<name>.yaml, ``_target_`` the class): a method
# is an algorithm of the papers. A setting of one (a prior, a dropout rate, EM-MCMC's decays)
# is not a method: it lives in the experiment that uses it (hydra.sweeper.arms).
METHODS: dict[str, type[Method]] = {
    "sgd": Deterministic,  # no regularisation
    "dropout": Deterministic,  # dropout after every hidden layer
    "bbb": BayesByBackprop,
    "svd": SparseVD,  # Sparse variational dropout, log-uniform prior
    "ard": SparseVD,  # variational ARD prior
    "svd_group": SparseVD,  # structured: a group variable per input neuron / channel
    "ssvi": SpikeSlabVI,
    "emmcmc": EMMCMC,
    "laplace": LaplacePosterior,
}


def build_method(cfg: DictConfig) -> Method:
    """Instantiate the method from its config (``_target_``); ``optimizer`` is left to the trainer."""
    # resolved first: interpolations into the root config (e.g. an experiment's
    # sparse_vd_warmup read by oc.select) would not resolve in a detached copy
    node = OmegaConf.to_container(cfg, resolve=True)
    node.pop("optimizer", None)
    return instantiate(OmegaConf.create(node), _convert_="all")
