"""Records → markdown tables and PNG figures under results/.

``bbbprune table experiment=<name>`` expands the experiment's sweep (``hydra.sweeper.params``
and ``arms``, bbbprune.run.sweep) into the same job configs ``bbbprune train -m experiment=<name>`` trains, finds each job's run
directory, reads its records, and writes ``results/<name>.md`` (and figures). Jobs without a
finished run are listed as missing; nothing is ever typed in by hand.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd


def markdown_row(cells) -> str:
    """One markdown table row; a "|" inside a cell (e.g. "|W|/|W≠0|", "by |μ|") is escaped so it
    does not split the cell."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _fmt(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return fmt.format(mean) + "†"  # one seed only (report.protocol.SINGLE_SEED)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def _select(df: pd.DataFrame, conditions: dict) -> pd.DataFrame:
    if df.empty:
        return df
    mask = pd.Series(True, index=df.index)
    for key, value in conditions.items():
        if key not in df.columns:
            return df.iloc[0:0]
        col = df[key]
        mask &= (col - float(value)).abs() < 1e-9 if isinstance(value, float) else col == value
    return df[mask]


def render_table(spec: dict, df: pd.DataFrame, split_value=None) -> str:
    """One markdown table: rows = spec rows, columns = spec columns; each cell "ours / paper"."""
    col_field, col_values = spec["columns"]["field"], spec["columns"]["values"]
    col_labels = spec["columns"].get("labels") or [str(v) for v in col_values]
    metric, fmt = spec["metric"], spec.get("format", "{:.2f}")
    fixed = dict(spec.get("fixed", {}))
    if spec.get("split_by") and split_value is not None:
        fixed[spec["split_by"]] = split_value
    header = ["method"] + col_labels
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    for row in spec["rows"]:
        published = row.get("published")
        if isinstance(published, dict):
            published = published.get(split_value)
        cells = [row["label"]]
        for j, value in enumerate(col_values):
            sel = _select(df, {**fixed, **row["select"], col_field: value})
            ours = _fmt(sel[metric].tolist() if not sel.empty else [], fmt)
            paper = published[j] if published and j < len(published) else None
            cells.append(ours if paper is None else f"{ours} / {fmt.format(paper)}")
        lines.append(markdown_row(cells))
    return "\n".join(lines)


# Where a top-level module sits in bbbprune's networks: input side first (models.py, resnets.py)
_SECTION_RANK = {"stem": 0, "net": 1, "features": 1, "stages": 2, "classifier": 3, "fc": 4}


def network_order(name: str) -> tuple:
    """Sort key that puts layer names in forward order. Records are written with sorted keys
    (storage.write_json), which would put LeNet-5's "classifier.0" before "features.0" and
    "net.11" before "net.3"."""
    parts = name.split(".")
    rank = _SECTION_RANK.get(parts[0], len(_SECTION_RANK))
    return (rank, parts[0], *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts[1:]))


def _per_layer(values: list[dict]) -> str:
    """Per-layer sparsity (%) averaged over seeds, layers joined by dashes as in Molchanov,
    input layer first."""
    layers = sorted(values[0], key=network_order)
    return "–".join(f"{100 * sum(v[k] for v in values) / len(values):.1f}" for k in layers)


def render_metrics_table(spec: dict, df: pd.DataFrame, split_value=None) -> str:
    """Rows = spec rows (one record per seed each), columns = metrics of those records.
    Column ``field: per_layer_sparsity`` prints each layer's sparsity."""
    fixed = dict(spec.get("fixed", {}))
    if spec.get("split_by") and split_value is not None:
        fixed[spec["split_by"]] = split_value
    header = ["method"] + [c["label"] for c in spec["columns"]]
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    for row in spec["rows"]:
        sel = _select(df, {**fixed, **row["select"]})
        published = row.get("published") or []
        cells = [row["label"]]
        for j, col in enumerate(spec["columns"]):
            if sel.empty or col["field"] not in sel.columns:  # e.g. older records
                ours = "–"
            elif col["field"] == "per_layer_sparsity":
                ours = _per_layer(sel[col["field"]].tolist())
            elif col["field"] == "kept_widths":  # the architecture of the first seed
                widths = sel[col["field"]].iloc[0]
                ours = "–" if widths is None else "-".join(str(w) for w in widths)
            else:
                ours = _fmt(sel[col["field"]].tolist(), col.get("format", "{:.2f}"))
            paper = published[j] if j < len(published) else None
            cells.append(ours if paper in (None, "") else f"{ours} / {paper}")
        lines.append(markdown_row(cells))
    return "\n".join(lines)


def render_list_table(spec: dict, df: pd.DataFrame, split_value=None) -> str:
    """One row per record that matches ``fixed`` (e.g. one per run of a hyperparameter sweep),
    columns = record fields, sorted by ``sort_by``."""
    sel = _select(df, dict(spec.get("fixed", {})))
    if spec.get("sort_by") and not sel.empty:
        sel = sel.sort_values(spec["sort_by"])
    header = [c["label"] for c in spec["columns"]]
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    for _, rec in sel.iterrows():
        cells = [c.get("format", "{}").format(rec[c["field"]]) for c in spec["columns"]]
        lines.append(markdown_row(cells))
    return "\n".join(lines)


def render_grouped_table(spec: dict, df: pd.DataFrame, split_value=None) -> str:
    """One row per distinct combination of the ``group_by`` fields (the first field in order of
    first appearance, e.g. the sweep's method order; the others sorted), cells mean ± sample
    std over the row's records (one per seed). A column with ``fields: [a, b]`` shows "a / b".
    Records of a method's own rule (criterion "native") reach a different sparsity in every
    seed; they share one row, whose fraction shows "–" (see the sparsity column)."""
    fixed = dict(spec.get("fixed", {}))
    if spec.get("split_by") and split_value is not None:
        fixed[spec["split_by"]] = split_value
    keys = list(spec["group_by"])
    header = keys + ["seeds"] + [c["label"] for c in spec["columns"]]
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    sel = _select(df, fixed)
    if sel.empty or any(k not in sel.columns for k in keys):
        return "\n".join(lines)
    sel = sel.copy()
    if "criterion" in sel.columns and "fraction" in keys:
        sel.loc[sel["criterion"] == "native", "fraction"] = -1.0
    first = {v: i for i, v in enumerate(pd.unique(sel[keys[0]]))}
    sel["_order"] = sel[keys[0]].map(first)
    sel = sel.sort_values(["_order", *keys[1:]], kind="stable")
    for values, group in sel.groupby(keys, sort=False):
        cells = [
            "–" if k == "fraction" and v < 0 else (f"{100 * v:g} %" if k == "fraction" else str(v))
            for k, v in zip(keys, values, strict=True)
        ]
        cells.append(str(group["seed"].nunique() if "seed" in group else len(group)))
        for col in spec["columns"]:
            fields = col.get("fields") or [col["field"]]
            fmt = col.get("format", "{:.2f}")
            parts = [_fmt(group[f].dropna().tolist() if f in group else [], fmt) for f in fields]
            cells.append(" / ".join(parts))
        lines.append(markdown_row(cells))
    return "\n".join(lines)


def not_finetuned(records: pd.DataFrame) -> pd.Series:
    """Which records were evaluated without retraining after pruning (records older than the
    ``finetune_epochs`` field were)."""
    if "finetune_epochs" not in records:
        return pd.Series(True, index=records.index)
    return records["finetune_epochs"].fillna(0) == 0


def unpruned_sampled_error(records: pd.DataFrame, run: str) -> float | None:
    """The test error of ``run``'s unpruned network in the sampled predictive: its fraction-0
    sampled record without fine-tuning (the first criterion's; unpruned, every criterion's
    network is the same), or None if it has none (e.g. pruned with ``prune.predictions=native``,
    whose sampled record is the pruned network's)."""
    if records.empty or "prediction" not in records:
        return None
    rows = records[
        (records["run"] == run)
        & (records["fraction"] == 0.0)
        & (records["prediction"] == "sampled")
        & not_finetuned(records)
    ].sort_values("criterion")
    return None if rows.empty else float(rows["error"].iloc[0])


def render_runs(runs: list[dict], records: pd.DataFrame | None = None) -> str:
    """Per-run facts: final test error, median wall time per epoch (robust to a few epochs slowed
    by other work on a shared machine), the evaluation's wall time (all pruning records after
    training; – for runs older than that field), parameter count. The sampled predictive's
    error is the unpruned sampled record's (``records``; runs older than that kept it in
    metrics.json)."""
    records = pd.DataFrame() if records is None else records
    lines = [
        "| run | epochs | parameters | median wall s/epoch | evaluation s "
        "| test error % (mean weights) | test error % (sampled) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in sorted(runs, key=lambda r: r["run"]):
        sampled = m["test"].get("sampled", {}).get("error")
        if sampled is None:
            sampled = unpruned_sampled_error(records, m["run"])
        evaluation = m.get("evaluation_time_s")
        lines.append(
            f"| {m['run']} | {m['epochs']} | {m['parameters']:,} | "
            f"{statistics.median(h['wall_time_s'] for h in m['history']):.2f} | "
            f"{'–' if evaluation is None else f'{evaluation:.1f}'} | "
            f"{m['test']['mean']['error']:.2f} | "
            f"{'–' if sampled is None else f'{sampled:.2f}'} |"
        )
    return "\n".join(lines)
