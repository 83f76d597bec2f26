"""An experiment's sweep: the override list of every job it trains.

An experiment declares its sweep under ``hydra.sweeper``:

* ``params``: one grid, ``{key: "a,b", other: "x,y"}`` (Hydra's basic sweeper: every
  combination of the values);
* ``arms`` (optional): a list of grids, each a dict of overrides like ``params``; the sweep is the
  union of the arms, each crossed with ``params`` (an arm's value wins over ``params`` for the
  same key). Arms let one experiment train heterogeneous settings, e.g.
  ``[{method: sgd}, {method: bbb, method.prior.pi: 0.25, method.prior.neg_log_sigma2: 7}]``.

On the command line, a key given there replaces the experiment's value of a ``params`` key;
for a key an arm sets, it picks the arm's jobs with that value (``method=sgd,dropout`` trains
only those arms' jobs). The same expansion serves ``bbbprune train -m`` (``ArmsSweeper``,
the sweeper of conf/config.yaml), ``--dry-run`` and the tables (bbbprune.report.jobs).
"""

from __future__ import annotations

import itertools
import sys
import types
from typing import Any

from ..errors import UserError

# Hydra instantiates sweepers only from classes registered under the hydra_plugins namespace:
# conf/hydra/sweeper/arms.yaml names the class by this module, ``register_sweeper`` registers it.
PLUGIN_MODULE = "hydra_plugins.bbbprune_sweeper"


def _text(value: Any) -> str:
    """A YAML value as override text (``True`` → ``true``, ``None`` → ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _axes(lines: list[str]) -> dict[str, list[str]]:
    """Each key's override texts, in order: the values of a sweep, or its one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes: dict[str, list[str]] = {}
    for o in OverridesParser.create().parse_overrides(lines):
        key = o.get_key_element()
        axes.pop(key, None)  # a later value for the same key replaces the earlier one
        axes[key] = (
            [f"{key}={v}" for v in o.sweep_string_iterator()]
            if o.is_sweep_override()
            else [f"{key}={o.get_value_element_as_str()}"]
        )
    return axes


def declared(sweeper) -> tuple[dict, list[dict] | None]:
    """``params`` and ``arms`` of a composed ``hydra.sweeper`` node, as plain containers."""
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {}
    arms = OmegaConf.to_container(sweeper.arms) if sweeper.get("arms") else None
    return params, arms


def sweep_jobs(
    params: dict | None, arms: list[dict] | None = None, arguments: list[str] = ()
) -> list[list[str]]:
    """The override list of every job: ``params`` crossed with each arm (union over the arms).
    ``arguments`` (the command line) replace the experiment's value of a key of ``params``; for
    a key an arm sets, they pick that arm's jobs whose value is among theirs (``method=bbb``
    keeps the BBB arms)."""
    params = params or {}
    given = _axes(list(arguments))
    jobs: list[list[str]] = []
    for arm in arms or [{}]:
        axes = _axes([f"{k}={_text(v)}" for k, v in {**params, **(arm or {})}.items()])
        arm_keys = set(_axes([f"{k}={_text(v)}" for k, v in arm.items()])) if arm else set()
        picks = {key: set(values) for key, values in given.items() if key in arm_keys}
        for key, values in given.items():
            if key not in picks:
                axes.pop(key, None)
                axes[key] = values
        for combo in itertools.product(*axes.values()):
            if any(
                o.split("=", 1)[0] in picks and o not in picks[o.split("=", 1)[0]] for o in combo
            ):
                continue
            if list(combo) not in jobs:  # arms that overlap train a job once
                jobs.append(list(combo))
    if not jobs and arms:
        raise UserError(
            "no arm of the experiment's sweep (hydra.sweeper.arms) matches " + " ".join(arguments)
        )
    return jobs or [[]]


def register_sweeper() -> None:
    """Register ``ArmsSweeper`` with Hydra under the name conf/hydra/sweeper/arms.yaml gives it
    (Hydra builds sweepers only from classes it has registered under ``hydra_plugins``)."""
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()
    if f"{PLUGIN_MODULE}.ArmsSweeper" in plugins.class_name_to_class:
        return
    sweeper = _sweeper_class()
    module = types.ModuleType(PLUGIN_MODULE)  # importable by that name, as Hydra locates it
    module.ArmsSweeper = sweeper
    sys.modules[PLUGIN_MODULE] = module
    plugins.register(sweeper)


def _sweeper_class():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    class ArmsSweeper(BasicSweeper):
        """Hydra's basic sweeper over ``sweep_jobs``: ``params`` and the union of ``arms``."""

        def __init__(self, max_batch_size=None, params=None, arms=None) -> None:
            super().__init__(max_batch_size=max_batch_size, params=params)
            self.arms = arms
            self._arguments: list[str] = []

        def sweep(self, arguments):
            self._arguments = list(arguments)
            return super().sweep(arguments)

        def split_arguments(self, overrides, max_batch_size):  # the jobs, in batches
            from omegaconf import OmegaConf

            params = OmegaConf.to_container(OmegaConf.create(dict(self.params or {})))
            arms = OmegaConf.to_container(self.arms) if self.arms is not None else None
            jobs = sweep_jobs(params, arms, self._arguments)
            return [list(c) for c in self.split_overrides_to_chunks(jobs, max_batch_size)]

    ArmsSweeper.__module__ = PLUGIN_MODULE
    ArmsSweeper.__qualname__ = "ArmsSweeper"
    return ArmsSweeper
