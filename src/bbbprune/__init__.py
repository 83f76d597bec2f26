"""bbbprune: train Bayesian neural networks and baselines, prune them, write tables.

The library API is importable from here; each name is loaded on first use, so that
``import bbbprune`` (and the command line) stays quick::

    bnn = bbbprune.convert(model, method="bbb", init="pretrained")
    loss = F.cross_entropy(bnn(x), y) + bbbprune.kl_divergence(bnn) / n_train
    bbbprune.prune_model(bnn, "snr", 0.9); bbbprune.sparsity(bnn)
    with bbbprune.sampling(bnn, True): ...
    small = bbbprune.shrink(bnn)
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0.dev1"

# public name -> the module that defines it
_API = {
    "convert": "bbbprune.nets.convert",
    "kl_divergence": "bbbprune.layers.bayes",
    "sampling": "bbbprune.layers.bayes",
    "prune_model": "bbbprune.pruning.criteria",
    "sparsity": "bbbprune.pruning.masking",
    "shrink": "bbbprune.deploy.shrink",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bbbprune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
