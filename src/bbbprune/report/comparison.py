"""What a grouped table shows, as sentences written from its records: at each declared fraction,
every row against one baseline row (``table.comparison``).

For a fraction f, the baseline's value b is the mean of ``metric`` over the baseline's records
at f (one per seed); every other row of the table (a combination of the ``group_by`` fields)
at f gives its mean v. The sentence states b, how many rows do better and how many worse
(lower is better unless ``higher_is_better``), the best and the worst row with v − b, and, with
``cost``, the best row's mean of that field (e.g. the extra wall time). Records of a method's own
rule (criterion ``native``) reach their own sparsity and take no part. Because the sentences are
computed when the table is written, they never go stale when the table is regenerated.
"""

from __future__ import annotations

import pandas as pd

from .render import _select


def _row_label(keys: list[str], values) -> str:
    return ", ".join(f"{k} {v}" for k, v in zip(keys, values, strict=True))


def comparison_lines(spec: dict, df: pd.DataFrame, split_value=None) -> list[str]:
    comp = spec.get("comparison")
    if not comp or df.empty:
        return []
    fixed = dict(spec.get("fixed", {}))
    if spec.get("split_by") and split_value is not None:
        fixed[spec["split_by"]] = split_value
    sel = _select(df, fixed)
    metric, fmt = comp["metric"], comp.get("format", "{:.2f}")
    sign = -1.0 if comp.get("higher_is_better") else 1.0  # sign * value: lower is better
    keys = [k for k in spec["group_by"] if k != "fraction"]
    if sel.empty or metric not in sel.columns or any(k not in sel.columns for k in keys):
        return []
    sel = sel[sel["criterion"] != "native"] if "criterion" in sel.columns else sel
    lines = []
    for fraction in comp["fractions"]:
        at = _select(sel, {"fraction": float(fraction)})
        base = _select(at, comp["baseline"])
        if base.empty:
            continue
        b = base[metric].mean()
        others = at.drop(index=base.index)
        if others.empty:
            continue
        means = others.groupby(keys, sort=False)[metric].mean()
        better = means[sign * means < sign * b]
        worse = means[sign * means > sign * b]
        order = (sign * means).sort_values(kind="stable")
        best, worst = order.index[0], order.index[-1]
        best = best if isinstance(best, tuple) else (best,)
        worst = worst if isinstance(worst, tuple) else (worst,)
        text = (
            f"At {100 * fraction:g} % removed: {comp['baseline_label']} {fmt.format(b)} "
            f"({comp['label']}); of the {len(means)} other rows, {len(better)} do better and "
            f"{len(worse)} worse. Best: {_row_label(keys, best)}, "
            f"{fmt.format(means[order.index[0]])} ({means[order.index[0]] - b:+.2f}"
        )
        if comp.get("cost") and comp["cost"] in others.columns:
            cost = others.groupby(keys, sort=False)[comp["cost"]].mean()[order.index[0]]
            text += f", {cost:.0f} {comp.get('cost_label', comp['cost'])}"
        text += (
            f"). Worst: {_row_label(keys, worst)}, {fmt.format(means[order.index[-1]])} "
            f"({means[order.index[-1]] - b:+.2f})."
        )
        lines.append(text)
    if not lines:
        return []
    bullets = [f"- {line}" for line in lines]
    return ["What the records show (written from them with the table):", "", *bullets, ""]
