"""An experiment's jobs: the composed config of every job its sweep trains."""

from __future__ import annotations

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ..run.sweep import declared, sweep_jobs


def sweep_overrides(params, arms=None) -> list[list[str]]:
    """Expand ``{key: "a,b", other: "x,y"}`` (and optional arms, a list of such grids whose
    union is the sweep) into the override lists of the jobs (bbbprune.run.sweep)."""
    return sweep_jobs(params or {}, arms)


def declared_sweep() -> tuple[dict, list[dict] | None]:
    """The experiment's declared sweep: ``hydra.sweeper.params`` and ``hydra.sweeper.arms``."""
    return declared(HydraConfig.get().sweeper)


def experiment_jobs(cfg: DictConfig) -> list[DictConfig]:
    """The composed config of every job in the experiment's sweep."""
    hc = HydraConfig.get()
    base = [o for o in hc.overrides.task]
    grid = sweep_overrides(*declared_sweep())
    swept = {o.split("=")[0].lstrip("+~") for combo in grid for o in combo}
    base = [o for o in base if o.split("=")[0].lstrip("+~") not in swept]
    return [compose(config_name="config", overrides=base + combo) for combo in grid]
