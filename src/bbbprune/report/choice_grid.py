"""The declared grid and rule of a ``choice`` experiment (bbbprune.report.choice), as its table
states them, and the label of each grid point ("setting") read from the experiment's own sweep:
one group per point of the grid, its seeds averaged."""

from __future__ import annotations

import pandas as pd

from ..run.identity import run_directory
from .choice import bound
from .jobs import sweep_overrides

SETTING = "setting"  # group_by value: the grid point of the sweep each run belongs to


def varying_keys(params: dict) -> list[str]:
    """The sweep's keys with more than one value, seeds left out (they are averaged)."""
    grid = sweep_overrides(params)
    keys = []
    for i, override in enumerate(grid[0] if grid else []):
        key = override.split("=")[0]
        if key != "seed" and len({combo[i] for combo in grid}) > 1:
            keys.append(key)
    return keys


def setting_labels(params: dict, jobs) -> dict[str, str]:
    """Run directory name → "key=value, ..." of the grid point it trains (``jobs`` in the order
    of bbbprune.report.jobs.experiment_jobs, i.e. of ``sweep_overrides(params)``)."""
    keys = varying_keys(params)
    labels = {}
    for combo, job in zip(sweep_overrides(params), jobs, strict=True):
        label = ", ".join(o for o in combo if o.split("=")[0] in keys)
        labels[run_directory(job).name] = label or "(single setting)"
    return labels


def with_settings(df: pd.DataFrame, params: dict, jobs) -> pd.DataFrame:
    """The records with a ``setting`` column naming their grid point."""
    if df.empty:
        return df
    return df.assign(**{SETTING: df["run"].map(setting_labels(params, jobs))})


def _where(select: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in select.items())


def declaration(spec: dict, params: dict) -> list[str]:
    """The grid and the rule, stated in words from the experiment file."""
    grid = [f"{k} ∈ {{{v}}}" for k, v in params.items()]
    score, checks = spec["score"], spec.get("checks", [])
    rule = (
        f"lowest {score['field']} ({_where(score['select'])}), on the validation split, among the "
        "grid points whose every check holds"
    )
    for c in checks:
        minus = f" − {c['field']} ({_where(c['minus'])})" if c.get("minus") else ""
        rule += f"; {c['field']} ({_where(c['select'])}){minus} {bound(c)}"
    return [
        "- grid (declared in the experiment file before the runs): " + "; ".join(grid),
        f"- rule (validation only): {rule}. Test columns take no part in the choice.",
        "",
    ]
