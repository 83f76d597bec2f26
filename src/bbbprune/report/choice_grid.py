"""The declared grid and rule of a ``choice`` experiment (bbbprune.report.choice), as its table
states them, and the label of each grid point ("setting") read from the experiment's own sweep:
one group per point of the grid, its seeds averaged."""

from __future__ import annotations

import pandas as pd

from ..run.identity import run_directory
from .choice import bound
from .jobs import sweep_overrides

SETTING = "setting"  # group_by value: the grid point of the sweep each run belongs to


def _settings(params: dict, arms=None) -> list[dict[str, str]]:
    """Each job's overrides as {key: value}, in the order of ``sweep_overrides``."""
    return [dict(o.split("=", 1) for o in combo) for combo in sweep_overrides(params, arms)]


def varying_keys(params: dict, arms=None) -> list[str]:
    """The sweep's keys whose value differs between jobs, seeds left out (they are averaged)."""
    settings = _settings(params, arms)
    keys = list(dict.fromkeys(k for s in settings for k in s))
    return [k for k in keys if k != "seed" and len({s.get(k) for s in settings}) > 1]


def setting_labels(params: dict, jobs, arms=None) -> dict[str, str]:
    """Run directory name → "key=value, ..." of the grid point it trains (``jobs`` in the order
    of bbbprune.report.jobs.experiment_jobs, i.e. of ``sweep_overrides(params, arms)``)."""
    keys = varying_keys(params, arms)
    labels = {}
    for setting, job in zip(_settings(params, arms), jobs, strict=True):
        label = ", ".join(f"{k}={setting[k]}" for k in keys if k in setting)
        labels[run_directory(job).name] = label or "(single setting)"
    return labels


def with_settings(df: pd.DataFrame, params: dict, jobs, arms=None) -> pd.DataFrame:
    """The records with a ``setting`` column naming their grid point."""
    if df.empty:
        return df
    return df.assign(**{SETTING: df["run"].map(setting_labels(params, jobs, arms))})


def _where(select: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in select.items())


def declaration(spec: dict, params: dict, arms=None) -> list[str]:
    """The grid and the rule, stated in words from the experiment file."""
    grid = [
        "; ".join(f"{k} ∈ {{{v}}}" for k, v in {**params, **arm}.items()) for arm in arms or [{}]
    ]
    score, checks = spec["score"], spec.get("checks", [])
    rule = (
        f"lowest {score['field']} ({_where(score['select'])}), on the validation split, among the "
        "grid points whose every check holds"
    )
    for c in checks:
        minus = f" − {c['field']} ({_where(c['minus'])})" if c.get("minus") else ""
        rule += f"; {c['field']} ({_where(c['select'])}){minus} {bound(c)}"
    return [
        "- grid (declared in the experiment file before the runs): " + " | ".join(grid),
        f"- rule (validation only): {rule}. Test columns take no part in the choice.",
        "",
    ]
