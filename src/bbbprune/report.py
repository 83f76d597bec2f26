"""Records → markdown tables and PNG figures under results/.

``bbbprune table experiment=<name>`` expands the experiment's sweep (``hydra.sweeper.params``)
into the same job configs ``bbbprune train -m experiment=<name>`` trains, finds each job's run
directory, reads its records, and writes ``results/<name>.md`` (and figures). Jobs without a
finished run are listed as missing; nothing is ever typed in by hand.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import statistics
from pathlib import Path

import pandas as pd
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from .errors import UserError
from .failures import describe_missing, failure_of
from .runs import METRICS, RECORDS, run_directory
from .storage import git_commit, read_json, write_text
from .validation_choice import render_choice_table

COLUMN_DEFINITIONS = {
    "error": "test error in %, 100 · (1 − accuracy), on the 10,000 test images",
    "val_error": "validation error in %, the same on the validation split (the last 10k training "
    "images), which is what a choice among runs may look at",
    "compression": "|W| / |W ≠ 0|: prunable weights over the weights left non-zero",
    "per_layer_sparsity": "share of each layer's weights set to exactly 0 (%), input layer first",
    "achieved_sparsity": "share of all prunable weights set to exactly 0",
    "final_train_accuracy": "accuracy on the training set during the last epoch",
    "final_val_accuracy": "validation accuracy after the last epoch (the last 10k training images)",
    "kept_widths": "the network left once dead inputs/neurons are removed (structured.shrink): "
    "inputs read, then the width of every layer",
    "accuracy": "test accuracy (fraction correct) on the 10,000 test images",
    "nll": "mean negative log-likelihood of the test labels",
    "channel_sparsity": "share of conv filters (output channels) the rebuilt network no longer "
    "computes (bbbprune.complexity.count_filters, dense vs structured.shrink)",
    "weights_dense": "conv + linear weights of the unpruned architecture",
    "macs_dense": "multiply-accumulates of the unpruned architecture's conv and linear layers for "
    "one input image",
    "filters_pruned": "conv filters (output channels) the rebuilt network computes",
    "weights_pruned": "conv + linear weights of the physically smaller rebuilt network "
    "(biases, batch norm and folded constants not counted)",
    "macs_pruned": "multiply-accumulates of the rebuilt network's conv and linear layers for one "
    "input image (bbbprune.complexity.count_macs)",
    "macs_ratio": "MACs of the dense network over MACs of the rebuilt one",
    "speedup_b1": "median CPU forward time of the dense network over the rebuilt one, batch 1 "
    "(both timed in turns in one process, after training)",
    "speedup_b256": "the same at batch 256",
    "rebuild_max_abs_diff": "largest |logit difference| between the masked network and its "
    "rebuild on up to 512 test images",
    "ece": "expected calibration error, 15 equal-width confidence bins (Guo et al. 2017, Eq. 3; "
    "torchmetrics MulticlassCalibrationError, l1)",
    "brier": "Brier score (1/n) Σ_i Σ_k (p_ik − 1[y_i = k])², from 0 (perfect) to 2",
    "ood_auroc": "AUROC of predictive entropy separating the out-of-distribution test images "
    "(positives) from the in-distribution ones (negatives); 0.5 = chance",
    "entropy_in": "mean predictive entropy (nats) of the in-distribution test images",
    "entropy_ood": "mean predictive entropy (nats) of the out-of-distribution test images",
    "export_size_percent": "bytes of the `bbbprune export` file (layout auto) over the bytes of "
    "the dense float32 export of the same network, in %",
    "latency_ratio_b1": "median CPU time of one forward pass of the export over the dense "
    "float32 network's, batch 1 (below 1: the export is faster)",
    "latency_ratio_b256": "the same at batch 256",
    "seeds": "number of seeds (records) averaged in the row",
    "extra_wall_s": "wall time (s) a run spent beyond training the network it started from "
    "(train.init_from: fine-tuning epochs or a Laplace fit); 0 for a network trained from scratch",
    "shrunk_params": "parameters of bbbprune.shrink(model): the pruned network with dead units "
    "and channels physically removed (outputs equal to the masked network's)",
    "shrunk_bytes": "bytes of that network's parameters and buffers, stored densely in float32",
    "shrunk_latency_b1_ms": "median CPU forward time of that network at batch 1 (ms)",
}


def markdown_row(cells) -> str:
    """One markdown table row; a "|" inside a cell (e.g. "|W|/|W≠0|", "by |μ|") is escaped so it
    does not split the cell."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


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


def gather(jobs: list[DictConfig]) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """Records and metrics of every job's run; the names of jobs not (yet) finished."""
    records, runs, missing, seen = [], [], [], set()
    for job in jobs:
        run_dir = run_directory(job)
        if run_dir in seen:  # two jobs of a sweep that name the same run: read it once
            continue
        seen.add(run_dir)
        metrics_file = run_dir / METRICS
        if not metrics_file.exists() or not read_json(metrics_file).get("finished"):
            missing.append(describe_missing(run_dir))
            continue
        metrics = read_json(metrics_file)
        runs.append(metrics)
        run_facts = {  # facts of the whole run that tables may show beside each record
            "prior": metrics.get("prior"),
            "final_train_accuracy": metrics["history"][-1]["train_accuracy"],
            "final_val_accuracy": metrics["history"][-1]["val_accuracy"],
        }
        if failure_of(run_dir):  # trained, but a later step (pruning) failed
            missing.append(describe_missing(run_dir))
        for path in sorted((run_dir / RECORDS).glob("*.json")):
            records.append({**run_facts, **read_json(path)})
    return pd.DataFrame(records), runs, missing


def _fmt(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return fmt.format(mean)
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


def render_runs(runs: list[dict]) -> str:
    """Per-run facts: final test error, median wall time per epoch (robust to a few epochs slowed
    by other work on a shared machine), parameter count."""
    lines = [
        "| run | epochs | parameters | median wall s/epoch | test error % (mean weights) "
        "| test error % (sampled) |",
        "|---|---|---|---|---|---|",
    ]
    for m in sorted(runs, key=lambda r: r["run"]):
        sampled = m["test"].get("sampled", {}).get("error")
        lines.append(
            f"| {m['run']} | {m['epochs']} | {m['parameters']:,} | "
            f"{statistics.median(h['wall_time_s'] for h in m['history']):.2f} | "
            f"{m['test']['mean']['error']:.2f} | "
            f"{'–' if sampled is None else f'{sampled:.2f}'} |"
        )
    return "\n".join(lines)


def write_experiment_report(cfg: DictConfig) -> Path:
    if not cfg.get("table"):
        raise UserError(
            "bbbprune table needs experiment=<name> (an experiment that defines a "
            "table); see conf/experiment/"
        )
    spec = OmegaConf.to_container(cfg.table, resolve=True)
    name = spec["name"]
    jobs = experiment_jobs(cfg)
    df, runs, missing = gather(jobs)
    seeds = sorted({r["seed"] for r in runs})
    commits = sorted({r["commit"] for r in runs})
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# {spec['title']}", ""]
    out += [
        f"- scale: **{cfg.scale.name}** ({spec.get('scale_note', '')})".replace(" ()", ""),
        f"- seeds: {', '.join(map(str, seeds)) or '–'} ({len(seeds)} seed{'s' * (len(seeds) != 1)};"
        " cells with more than one seed show mean ± std)",
        f"- commit of the runs: {', '.join(commits) or '–'}; table written by commit {git_commit()}",
        f"- date: {now}",
        f"- reproduce: `bbbprune train -m experiment={name} scale={cfg.scale.name}` then "
        f"`bbbprune table experiment={name} scale={cfg.scale.name}`",
        f"- source of the published numbers: {spec.get('source', '–')}",
        "",
    ]
    if spec.get("note"):
        out += [spec["note"].strip(), ""]
    splits = [None]
    if spec.get("split_by"):
        splits = spec.get("split_values") or (
            sorted(df[spec["split_by"]].unique()) if not df.empty else [None]
        )
    for value in splits:
        if value is not None:
            out += [f"## {spec['split_by']} = {value}", ""]
        render = {
            "metrics": render_metrics_table,
            "list": render_list_table,
            "grouped": render_grouped_table,
            "choice": render_choice_table,
        }.get(spec.get("layout"), render_table)
        out += [render(spec, df, value), ""]
    if spec.get("sections"):  # computed from the runs themselves (bbbprune.analyses)
        from .analyses import render_sections

        out += render_sections(spec["sections"], jobs)
    out += ["## Columns", ""]
    metrics = (
        [spec["metric"]]
        if spec.get("metric")
        else [f for c in spec["columns"] for f in c.get("fields") or [c["field"]]]
    )
    if spec.get("layout") == "choice":  # the fields the choice itself looks at come first
        metrics = [spec["score"]["field"], *(c["field"] for c in spec.get("checks", []))] + metrics
    metrics = list(dict.fromkeys(metrics))
    metrics += ["seeds"] if spec.get("layout") == "grouped" else []
    out += [f"- **{m}**: {COLUMN_DEFINITIONS[m]}" for m in metrics if m in COLUMN_DEFINITIONS]
    out += [
        "- each cell: ours / published (where the source has a number); with several seeds, "
        "ours is mean ± sample std",
        "- prunable parameters: the weights of every linear/conv layer; biases are never pruned. "
        "Fraction = share of prunable weights set to exactly 0, chosen globally across layers "
        "unless the header says per layer; no retraining after pruning.",
        "- mean weights: one deterministic pass (posterior means μ for Bayes by Backprop); "
        "sampled: the predictive averaged over S weight samples.",
        "",
    ]
    out += ["## Runs", "", render_runs(runs) if runs else "(none finished)", ""]
    if missing:
        out += ["## Missing", "", "Not finished or FAILED (train them with the command above):", ""]
        out += [f"- {m}" for m in missing] + [""]
    results = Path(cfg.paths.results)
    figures = []
    if runs and spec.get("figures"):
        from .figures import draw_figures

        figures = draw_figures(spec["figures"], jobs, results, name)
        if figures:
            out += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    path = results / f"{name}.md"
    write_text(path, "\n".join(out))
    write_text(
        results / f"{name}.records.json",
        json.dumps(df.to_dict(orient="records"), indent=1, default=str),
    )
    print(f"wrote {path} ({len(runs)} runs, {len(df)} records, {len(missing)} missing)")
    return path
