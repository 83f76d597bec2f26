"""An experiment's jobs: the composed config of every job its sweep trains."""

from __future__ import annotations

import itertools

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf


def sweep_overrides(params) -> list[list[str]]:
    """Expand ``{key: "a,b", other: "x,y"}`` into the grid of override lists Hydra's basic
    sweeper runs (parsed by Hydra's own override parser)."""
    if not params:
        return [[]]
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    values = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.get_key_element()}={o.get_value_element_as_str()}"]
        for o in parsed
    ]
    return [list(combo) for combo in itertools.product(*values)]


def experiment_jobs(cfg: DictConfig) -> list[DictConfig]:
    """The composed config of every job in the experiment's sweep."""
    hc = HydraConfig.get()
    base = [o for o in hc.overrides.task]
    grid = sweep_overrides(OmegaConf.to_container(hc.sweeper.params) if hc.sweeper.params else {})
    swept = {o.split("=")[0] for combo in grid for o in combo}
    base = [o for o in base if o.split("=")[0].lstrip("+~") not in swept]
    return [compose(config_name="config", overrides=base + combo) for combo in grid]
