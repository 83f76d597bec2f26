"""Choosing one configuration of a sweep (a prior, a threshold) on the validation split, under
constraints: the table layout ``choice``.

For every value of ``group_by`` (e.g. each prior of blundell_prior_grid), with r(s) the value of
``field`` in the record that matches the selection s (criterion, fraction, prediction):

  * score = r(score.select), lower is better (e.g. the validation error of the unpruned net);
  * each check k: d_k = r(k.select) − r(k.minus) (or r(k.select) without ``minus``) must be
    ≤ k.max (e.g. the rise of the validation error after removing 95 % of the weights ≤ 0.3);
  * chosen: the group with the lowest score among those whose checks all pass (a check whose
    records are missing fails). No group passing: none is chosen, and the table says so.

Columns (``columns``, each with its own ``select`` and optional ``minus``, as a check without a
bound) are shown for information and never take part in the choice: the test error belongs there.
"""

from __future__ import annotations

import math

import pandas as pd

CHOSEN = "← chosen"


def _value(group: pd.DataFrame, field: str, select: dict) -> float:
    """The mean of ``field`` over the group's records matching ``select`` (NaN: none)."""
    mask = pd.Series(True, index=group.index)
    for key, want in select.items():
        if key not in group.columns:
            return math.nan
        col = group[key]
        mask &= (col - float(want)).abs() < 1e-9 if isinstance(want, float) else col == want
    if field not in group.columns:
        return math.nan
    values = group.loc[mask, field].dropna()
    return float(values.mean()) if len(values) else math.nan


def check_value(group: pd.DataFrame, check: dict) -> float:
    """d_k = r(select) − r(minus) (module docstring); NaN when a record is missing."""
    value = _value(group, check["field"], check["select"])
    if check.get("minus") is not None:
        value -= _value(group, check["field"], check["minus"])
    return value


def passes(value: float, check: dict) -> bool:
    """d_k within its bounds: ≤ ``max`` and, where given, ≥ ``min``."""
    if math.isnan(value):
        return False
    high = check.get("max")
    low = check.get("min")
    return (high is None or value <= float(high) + 1e-12) and (
        low is None or value >= float(low) - 1e-12
    )


def bound(check: dict) -> str:
    """The bound of a check as the header shows it: "≤ 0.3", "≥ 0.5" or "≥ 0.5, ≤ 1"."""
    parts = ([f"≥ {check['min']}"] if check.get("min") is not None else []) + (
        [f"≤ {check['max']}"] if check.get("max") is not None else []
    )
    return ", ".join(parts)


def choose(spec: dict, df: pd.DataFrame) -> tuple[list[dict], object]:
    """Rows (one per group value, by increasing score; groups without a score last) and the
    chosen group value (None if no group passes every check)."""
    key, score = spec["group_by"], spec["score"]
    if df.empty or key not in df.columns:
        return [], None
    rows = []
    for value, group in df.groupby(key, sort=False):
        checks = [check_value(group, c) for c in spec.get("checks", [])]
        rows.append(
            {
                "group": value,
                "score": _value(group, score["field"], score["select"]),
                "checks": checks,
                "passed": all(passes(v, c) for v, c in zip(checks, spec["checks"], strict=True)),
                "columns": [check_value(group, c) for c in spec["columns"]],
            }
        )
    rows.sort(key=lambda r: (math.isnan(r["score"]), r["score"]))
    passing = [r for r in rows if r["passed"] and not math.isnan(r["score"])]
    return rows, (passing[0]["group"] if passing else None)


def _cell(value: float, fmt: str) -> str:
    return "–" if math.isnan(value) else fmt.format(value)


def render_choice_table(spec: dict, df: pd.DataFrame, split_value=None) -> str:
    """The ``choice`` layout: group, score, each check (value, ✓ or ✗ against its bound), the
    information columns, and the chosen row marked; a closing line names the choice."""
    rows, chosen = choose(spec, df)
    score, checks, columns = spec["score"], spec.get("checks", []), spec["columns"]
    header = [spec.get("group_label", spec["group_by"]), score["label"]]
    header += [f"{c['label']} ({bound(c)})" for c in checks]
    header += [c["label"] for c in columns] + ["choice"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["group"]), _cell(row["score"], score.get("format", "{:.2f}"))]
        for value, check in zip(row["checks"], checks, strict=True):
            mark = "✓" if passes(value, check) else "✗"
            cells.append(f"{_cell(value, check.get('format', '{:+.2f}'))} {mark}")
        cells += [
            _cell(v, c.get("format", "{:.2f}"))
            for v, c in zip(row["columns"], columns, strict=True)
        ]
        cells.append(CHOSEN if row["group"] == chosen else "")
        lines.append("| " + " | ".join(cells) + " |")
    verdict = (
        f"Chosen on validation: **{chosen}**."
        if chosen is not None
        else "No configuration passes every check on validation: none is chosen."
    )
    return "\n".join(lines) + "\n\n" + verdict
