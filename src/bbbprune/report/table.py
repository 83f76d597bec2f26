"""``bbbprune table``: an experiment's records to ``results/<name>.md`` and its figures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError
from ..evaluation.records import analyses_for
from ..storage import git_commit, write_text
from .analyses import render_sections
from .choice import render_choice_table
from .choice_grid import SETTING, declaration, with_settings
from .comparison import comparison_lines
from .figures import draw_figures
from .gather import gather, missing_analyses
from .glossary import COLUMN_DEFINITIONS
from .jobs import declared_sweep, experiment_jobs
from .protocol import header_lines, single_seed_note
from .render import (
    render_grouped_table,
    render_list_table,
    render_metrics_table,
    render_runs,
    render_table,
)

DEFAULT_SCALE = "small"  # conf/config.yaml's default scale: its tables are the committed ones


def results_folder(cfg) -> Path:
    """``results/`` for the default scale, ``results/<scale>/`` for any other, so that a smoke
    or paper table never replaces the committed one. An experiment outside the default list
    may name a subfolder (``table.folder``, e.g. ``searches``): its tables go to
    ``results/<folder>/`` (and ``results/<folder>/<scale>/``), beside, not among, the tables
    ``make reproduce-tables`` writes."""
    results = Path(cfg.paths.results)
    folder = (cfg.get("table") or {}).get("folder")
    if folder:
        results = results / str(folder)
    return results if cfg.scale.name == DEFAULT_SCALE else results / str(cfg.scale.name)


def fidelity_lines(spec: dict, scale: str) -> list[str]:
    """The header line saying where this scale lands against the published numbers (and
    against earlier versions of the table): ``table.fidelity`` is keyed by scale."""
    note = (spec.get("fidelity") or {}).get(scale)
    return [f"- fidelity at this scale: {note}"] if note else []


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
    record_commits = sorted(set(df["commit"].dropna())) if "commit" in df else []
    machines = sorted({r["machine"] for r in runs if r.get("machine")})
    record_machines = sorted(set(df["machine"].dropna())) if "machine" in df else []
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# {spec['title']}", ""]
    out += [
        f"- scale: **{cfg.scale.name}** ({spec.get('scale_note', '')})".replace(" ()", ""),
        f"- seeds: {', '.join(map(str, seeds)) or '–'} ({len(seeds)} seed{'s' * (len(seeds) != 1)};"
        " cells with more than one seed show mean ± std)",
        f"- commit of the runs: {', '.join(commits) or '–'}; of the pruning records: "
        f"{', '.join(record_commits) or '–'}; table written by commit {git_commit()}",
        f"- machine of the runs: {'; '.join(machines) or '–'}; of the pruning records: "
        f"{'; '.join(record_machines) or '–'} (numbers repeat bit for bit on one machine, not "
        "across CPUs)",
        f"- date: {now}",
        f"- reproduce: `bbbprune train -m experiment={name} scale={cfg.scale.name}` then "
        f"`bbbprune table experiment={name} scale={cfg.scale.name}`",
        f"- source of the published numbers: {spec.get('source', '–')}",
    ]
    out += fidelity_lines(spec, cfg.scale.name) + [""]
    out += header_lines(spec, runs, df)  # the reporting protocol (bbbprune.report.protocol)
    if spec.get("layout") == "choice":
        params, arms = declared_sweep()
        out += declaration(spec, params, arms)
        if spec["group_by"] == SETTING:
            df = with_settings(df, params, jobs, arms)
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
        out += comparison_lines(spec, df, value)  # what the rows show against the baseline
    if spec.get("sections"):  # computed from the runs themselves (bbbprune.report.analyses)
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
    out += single_seed_note(seeds) + [""]
    out += ["## Runs", "", render_runs(runs, df) if runs else "(none finished)", ""]
    if missing:
        out += ["## Missing", "", "Not finished or FAILED (train them with the command above):", ""]
        out += [f"- {m}" for m in missing] + [""]
    lacking = missing_analyses(jobs, analyses_for(spec))
    if lacking:
        out += [
            "## Missing analyses",
            "",
            "Trained, but without what a figure or section reads:",
            "",
        ]
        out += [f"- {m}" for m in lacking] + [""]
    results = results_folder(cfg)
    figures = []
    if runs and spec.get("figures"):
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
