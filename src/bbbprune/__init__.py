"""bbbprune: train Bayesian neural networks and baselines, prune them, write tables.

The library API (imported on first use, so ``import bbbprune`` stays cheap)::

    bnn = bbbprune.convert(model, method="bbb", init="pretrained")
    loss = F.cross_entropy(bnn(x), y) + bbbprune.kl_divergence(bnn) / n_train
    bbbprune.prune_model(bnn, "snr", 0.9); bbbprune.sparsity(bnn)
    with bbbprune.sampling(bnn, True): ...
    small = bbbprune.shrink(bnn)
"""

__version__ = "0.1.0"

_API = {
    "convert": "bbbprune.nets.convert",
    "kl_divergence": "bbbprune.layers",
    "sampling": "bbbprune.layers",
    "prune_model": "bbbprune.pruning",
    "sparsity": "bbbprune.pruning",
    "shrink": "bbbprune.deploy.shrink",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bbbprune' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
