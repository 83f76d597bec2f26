"""What a grouped table shows, as sentences written from its records: at each declared fraction,
every row against one baseline row (``table.comparison``).

For a fraction f, the baseline's value b is the mean of ``metric`` over the baseline's records
at f (one per seed); every other row of the table (a combination of the ``group_by`` fields)
at f is set against the baseline over the seeds both have: v, the row's mean over those seeds,
against the baseline's mean over the same seeds (paired by seed: a one-seed row is compared with
the baseline's value on that seed, not with the mean of three). A row that shares no seed with
the baseline takes no part (the sentence says how many). The sentence states b, how many rows do better and how many worse (lower is better unless
``higher_is_better``), the best and the worst row by their paired difference, and, with ``cost``,
the best row's mean of that field (e.g. the extra wall time). Records of a method's own rule
(criterion ``native``) reach their own sparsity and take no part. Because the sentences are
computed when the table is written, they never go stale when the table is regenerated.
"""

from __future__ import annotations

import pandas as pd

from .render import _select


def _row_label(keys: list[str], values) -> str:
    return ", ".join(f"{k} {v}" for k, v in zip(keys, values, strict=True))


def _seeds(frame: pd.DataFrame) -> tuple:
    return tuple(sorted(set(frame["seed"]))) if "seed" in frame.columns else ()


def _seed_text(seeds: tuple) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def _sentence(comp, base, others, keys, fraction, sign, fmt) -> str | None:
    """One fraction's sentence: each row's mean v over the seeds it shares with the baseline,
    against the baseline's mean b over the same seeds: d = v − b."""
    metric = comp["metric"]
    all_seeds = _seeds(base)
    rows = []  # (label values, v, paired baseline, seeds, cost)
    unpaired = 0
    for values, group in others.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        seeds = tuple(s for s in _seeds(group) if s in all_seeds)  # the seeds both have
        if seeds:
            group = group[group["seed"].isin(seeds)]
            paired = base[base["seed"].isin(seeds)]
        elif all_seeds:
            unpaired += 1
            continue
        else:  # no seed column: all records are one comparison
            paired = base
        cost = group[comp["cost"]].mean() if comp.get("cost") in group.columns else None
        rows.append((values, group[metric].mean(), paired[metric].mean(), seeds, cost))
    if not rows:
        return None
    diffs = [v - b for _, v, b, _, _ in rows]
    better = sum(sign * d < 0 for d in diffs)
    worse = sum(sign * d > 0 for d in diffs)
    order = sorted(range(len(rows)), key=lambda i: sign * diffs[i])  # stable: table order

    def described(i: int, with_cost: bool) -> str:
        values, v, b, seeds, cost = rows[i]
        text = f"{_row_label(keys, values)}, {fmt.format(v)} ({diffs[i]:+.2f}"
        if seeds and seeds != all_seeds:
            text += f" against {fmt.format(b)} on {_seed_text(seeds)}"
        if with_cost and cost is not None:
            text += f", {cost:.0f} {comp.get('cost_label', comp['cost'])}"
        return text + ")"

    b = base[metric].mean()
    seeds = f", {_seed_text(all_seeds)}" if all_seeds else ""
    text = (
        f"At {100 * fraction:g} % removed: {comp['baseline_label']} {fmt.format(b)} "
        f"({comp['label']}{seeds}); of the {len(rows)} other rows, each against it over its "
        f"own seeds, {better} do better and {worse} worse"
    )
    if unpaired:
        text += f" ({unpaired} sharing no seed with it left out)"
    return text + f". Best: {described(order[0], True)}. Worst: {described(order[-1], False)}."


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
        others = at.drop(index=base.index)
        if others.empty:
            continue
        line = _sentence(comp, base, others, keys, fraction, sign, fmt)
        if line:
            lines.append(line)
    if not lines:
        return []
    bullets = [f"- {line}" for line in lines]
    return ["What the records show (written from them with the table):", "", *bullets, ""]
