"""Every config group option composes, and every experiment's sweep expands into valid jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_config
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bbbprune.methods import build_method
from bbbprune.report.jobs import sweep_overrides
from bbbprune.run.identity import run_directory
from bbbprune.run.sweep import declared

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group", ["method", "dataset", "model", "device", "scale", "experiment", "logger"]
)
def test_every_option_composes(group):
    for option in options(group):
        cfg = compose_config([f"{group}={option}"])
        OmegaConf.resolve(cfg)  # every interpolation resolves
        assert cfg.train.epochs >= 1
        if group == "method":
            method = build_method(cfg.method)
            assert method.name == option  # a method is named after its file
            if method.trains:  # a post-hoc method (laplace) has no optimizer
                assert callable(instantiate(cfg.method.optimizer))


# the largest sweeps (5-25 s each to compose on 2 cores) run with make test-all only
LARGE_SWEEPS = {
    "blundell_prior_grid",
    "blundell_table1",
    "blundell_table1_paper",
    "blundell_table2",
    "calibration_fmnist",
    "calibration_mnist",
    "kefan_lenet5_choice",
    "kefan_mlp",
    "prasad",
    "saha_simulated",
}


def _sweep_grid(experiment: str) -> list[list[str]]:
    """The override list of every job of the experiment's declared sweep (params and arms)."""
    with initialize_config_module(config_module="bbbprune.conf", version_base="1.3"):
        full = compose("config", [f"experiment={experiment}"], return_hydra_config=True)
    return sweep_overrides(*declared(full.hydra.sweeper))


@pytest.mark.parametrize(
    "experiment",
    [
        pytest.param(e, marks=pytest.mark.slow) if e in LARGE_SWEEPS else e
        for e in options("experiment")
    ],
)
def test_experiment_sweeps_expand_to_distinct_runs(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.table.name.startswith(experiment.split("_paper")[0])
    grid = _sweep_grid(experiment)
    assert len(grid) >= 1
    dirs = {run_directory(compose_config([f"experiment={experiment}", *combo])) for combo in grid}
    assert len(dirs) == len(grid)


def test_scale_sets_the_epochs():
    assert compose_config(["scale=smoke"]).train.epochs == 1
    assert compose_config(["experiment=blundell_table1", "scale=paper"]).train.epochs == 600
    assert compose_config(["experiment=prasad", "scale=small"]).train.epochs == 5


def _sweep_runs(experiment: str) -> set:
    return {
        run_directory(compose_config([f"experiment={experiment}", *combo])).name
        for combo in _sweep_grid(experiment)
    }


@pytest.mark.parametrize(
    "experiment, source",
    [
        ("blundell_table2", "blundell_table1"),  # the BBB networks of blundell_table1
        ("vidlicka", "blundell_table1"),
        ("structured_lenet", "molchanov_lenet"),  # molchanov_lenet's Sparse VD run
    ],
)
def test_runs_shared_between_experiments_are_trained_once(experiment, source):
    shared = _sweep_runs(experiment) & _sweep_runs(source)
    assert shared
    if experiment != "structured_lenet":
        assert _sweep_runs(experiment) <= _sweep_runs(source)
