"""Run identity (bbbprune.run.identity): the run name changes with what changes numbers and not
with import paths."""

from __future__ import annotations

import copy

from hydra.utils import get_class, get_method
from omegaconf import OmegaConf

from bbbprune.run.identity import run_directory


def _with(cfg, **values):
    out = copy.deepcopy(cfg)
    OmegaConf.set_struct(out, False)
    for key, value in values.items():
        OmegaConf.update(out, key, value, merge=False)
    return out


def test_moving_a_target_to_another_import_path_keeps_the_run_name(smoke_cfg):
    cfg = smoke_cfg("method=bbb")
    moved = _with(
        cfg,
        **{
            "method._target_": "bbbprune.methods.bbb.BayesByBackprop",
            "method.optimizer._target_": "torch.optim.adam.Adam",
        },
    )
    # the same class under two import paths
    assert get_class(cfg.method._target_) is get_class(moved.method._target_)
    assert get_method(cfg.method.optimizer._target_) is get_method(moved.method.optimizer._target_)
    assert run_directory(moved) == run_directory(cfg)


def test_what_changes_numbers_changes_the_run_name(smoke_cfg):
    cfg = smoke_cfg("method=bbb")
    name = run_directory(cfg)
    assert run_directory(_with(cfg, **{"method.prior.pi": 0.25})) != name
    assert run_directory(_with(cfg, **{"method.optimizer.lr": 0.01})) != name
    assert run_directory(_with(cfg, **{"method._target_": "bbbprune.methods.SparseVD"})) != name
    assert run_directory(_with(cfg, **{"train.epochs": 2})) != name
    assert run_directory(_with(cfg, seed=1)) != name
    # and what does not, does not
    assert run_directory(_with(cfg, **{"train.progress": True, "dataset.verify": True})) == name
