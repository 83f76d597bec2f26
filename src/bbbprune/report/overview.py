"""``bbbprune overview``: ``results/README.md``, one page over every table ``bbbprune table`` wrote.

A pure function of files under results/: each experiment's records (``<name>.records.json``),
its table declaration (the experiment's ``table:`` block, composed by Hydra), the figures that
exist beside them, and an optional file of wall times (``name<TAB>seconds`` per line, the last
one ``total<TAB>seconds``). No checkpoint, run directory or dataset is read.

Each experiment declares its headline under ``table.headline``: one cell of its own table,
``{row: i, column: j}`` (row index in ``table.rows``, column index in ``table.columns``; for
``split_by`` tables also ``split: <value>``; for ``grouped`` and ``list`` layouts ``select:``
the record fields that leave one row, with ``row`` counting from 0 among the rows left, and
for ``list`` a ``sort_by`` field that orders them, e.g. the row of the lowest error). The
headline is read off the table as the table's own render function draws it, so it always
equals that cell. The overview figures plot test error against compression 1 / (1 - fraction
of prunable weights removed), as in Han et al. 2016 and Blalock et al. 2020 (Sec. 7).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..storage import git_commit, write_text  # noqa: E402
from .figures import FIGURES  # noqa: E402
from .plotting import save_figure  # noqa: E402
from .render import (  # noqa: E402
    _select,
    markdown_row,
    not_finetuned,
    render_grouped_table,
    render_list_table,
    render_metrics_table,
    render_table,
)

README = "README.md"
DASH = "–"
RENDERERS = {
    None: render_table,
    "metrics": render_metrics_table,
    "list": render_list_table,
    "grouped": render_grouped_table,
}
# Criteria that every method is pruned by besides its own (the baselines), and a method's own
# rule, which reaches a sparsity of its choosing rather than a swept fraction.
BASELINE_CRITERIA = ("magnitude", "random")
NATIVE = "native"
CHANCE_ERROR = 80.0  # % test error of an unpruned network: at chance (10 classes: 90 %)


@dataclass
class Headline:
    """One cell of an experiment's table: its label, the value as the table shows it (ours),
    and the published number of that cell (or "–")."""

    label: str
    value: str
    published: str


def read_records(path: Path) -> pd.DataFrame:
    """The records ``bbbprune table`` wrote (``<name>.records.json``); empty if there are none."""
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.DataFrame(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as exc:
        raise UserError(f"{path} is not a records file: {exc}") from exc


def read_times(path: Path | None) -> dict[str, float]:
    """``name -> seconds`` from a TSV of ``name<TAB>seconds`` lines; {} if there is no file."""
    if path is None or not Path(path).exists():
        return {}
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            if len(parts) != 2:
                raise ValueError
            out[parts[0].strip()] = float(parts[1])
        except ValueError:
            raise UserError(
                f"{path}, line {number}: expected name<TAB>seconds, got {line!r}"
            ) from None
    return out


def _minutes(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds / 60:.1f}"


def _cells(line: str) -> list[str]:
    """The cells of one row drawn by :func:`markdown_row` ("\\|" inside a cell stays whole)."""
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def _split_value(spec: dict, df: pd.DataFrame, headline: dict):
    if not spec.get("split_by"):
        return None
    if headline.get("split") is not None:
        return headline["split"]
    values = spec.get("split_values") or (
        sorted(df[spec["split_by"]].unique()) if spec["split_by"] in df.columns else [None]
    )
    return values[0]


def _published(spec: dict, row: int, column: int, split_value) -> str | None:
    """The published number of a cell as its table prints it after "ours / ", or None."""
    layout = spec.get("layout")
    if layout not in (None, "metrics"):
        return None
    published = spec["rows"][row].get("published")
    if isinstance(published, dict):
        published = published.get(split_value)
    if not published or column >= len(published) or published[column] in (None, ""):
        return None
    paper = published[column]
    return spec.get("format", "{:.2f}").format(paper) if layout is None else str(paper)


def _labels(spec: dict, headline: dict, row: int, column: int, split_value) -> str:
    """The headline's own label, or "<row label>, <column label>" (with the split value)."""
    if headline.get("label"):
        return str(headline["label"])
    layout = spec.get("layout")
    columns = spec["columns"]
    if layout is None:
        col = (columns.get("labels") or [str(v) for v in columns["values"]])[column]
        text = f"{spec['rows'][row]['label']}: {spec['metric']} at {col}"
    elif layout == "metrics":
        text = f"{spec['rows'][row]['label']}: {columns[column]['label']}"
    else:
        chosen = ", ".join(f"{k}={v}" for k, v in (headline.get("select") or {}).items())
        text = f"{chosen}: {columns[column]['label']}" if chosen else columns[column]["label"]
    return f"{text} ({spec['split_by']} = {split_value})" if split_value is not None else text


def headline_of(name: str, spec: dict | None, df: pd.DataFrame) -> Headline | None:
    """The cell ``spec["headline"]`` names, read off the table the layout's render function
    draws from ``df`` (so it is that cell exactly, "†" for one seed included); None if the
    experiment declares no headline. A headline that names no cell is a UserError."""
    headline = (spec or {}).get("headline")
    if not headline:
        return None
    layout = spec.get("layout")
    if layout not in RENDERERS:
        raise UserError(
            f"{name}: table.headline is not supported for layout {layout!r}; "
            f"supported: {', '.join(str(k or 'rows and columns') for k in RENDERERS)}"
        )
    row, column = int(headline.get("row", 0)), headline.get("column")
    n_columns = len(spec["columns"]["values"]) if layout is None else len(spec["columns"])
    if column is None or not 0 <= int(column) < n_columns:
        raise UserError(
            f"{name}: table.headline.column must be in 0..{n_columns - 1}, got {column!r}"
        )
    column = int(column)
    if layout in (None, "metrics") and not 0 <= row < len(spec["rows"]):
        raise UserError(
            f"{name}: table.headline.row must be in 0..{len(spec['rows']) - 1}, got {row}"
        )
    split_value = _split_value(spec, df, headline)
    sel = _select(df, dict(headline["select"])) if headline.get("select") else df
    if layout == "list" and headline.get("sort_by"):  # e.g. the row of the lowest test MSE
        spec = {**spec, "sort_by": headline["sort_by"]}
    lines = RENDERERS[layout](spec, sel, split_value).splitlines()[2:]
    offset = {None: 1, "metrics": 1, "list": 0, "grouped": len(spec.get("group_by", [])) + 1}
    value = DASH
    if row < len(lines):  # a grouped or list table without the selected records has no row
        value = _cells(lines[row])[offset[layout] + column]
    paper = _published(spec, row, column, split_value)
    if paper is not None and value.endswith(f" / {paper}"):
        value = value[: -len(f" / {paper}")]
    return Headline(
        _labels(spec, headline, row, column, split_value), value, DASH if paper is None else paper
    )


def figure_files(name: str, results: Path) -> list[Path]:
    """The figures ``bbbprune table`` drew for experiment ``name`` (``<name>_<figure>.png`` of a
    known figure: ``kefan_lenet5_choice_loss_curves.png`` is not one of kefan_lenet5's)."""
    return sorted(
        p for p in results.glob(f"{name}_*.png") if p.stem[len(name) + 1 :] in FIGURES.keys()
    )


def primary_criteria(df: pd.DataFrame) -> dict[str, str]:
    """``method -> criterion`` that each method is pruned by in the overview: the method's own
    criterion in the records (e.g. snr for BBB, log_alpha for Sparse VD, pip for SS-VI), i.e. the
    one that is neither a baseline (|w|, random), nor its native rule, nor a control; methods
    without one (SGD, dropout, EM-MCMC) are pruned by |w|. A method with several own criteria
    takes the one with the most records (ties: the first in name order)."""
    out = {}
    for method, group in df.groupby("method"):
        counts = group["criterion"].value_counts()
        own = sorted(
            (c for c in counts.index if c != NATIVE and c.split("_")[0] not in BASELINE_CRITERIA),
            key=lambda c: (-counts[c], c),
        )
        fallback = [c for c in BASELINE_CRITERIA if c in counts.index]
        if own or fallback:
            out[method] = (own or fallback)[0]
    return out


def figure_records(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """The records the overview figures draw, and the runs left out for being at chance.

    Kept: mean weights, every method's primary criterion (:func:`primary_criteria`), global
    scope, no retraining; left out: controls (records with a reference_criterion), own rules,
    regression records (test MSE), and runs whose unpruned network is at chance (test error
    >= CHANCE_ERROR %, e.g. random_labels, trained on shuffled labels). Records of one run that
    several experiments share count once."""
    frames = [f for f in frames if not f.empty]
    needed = {"dataset", "method", "model", "criterion", "fraction", "prediction", "error", "run"}
    if not frames:
        return pd.DataFrame(), []
    df = pd.concat(frames, ignore_index=True)
    if not needed <= set(df.columns):
        return pd.DataFrame(), []
    keep = (df["prediction"] == "mean") & (df["criterion"] != NATIVE) & df["error"].notna()
    for column in ("reference_criterion", "mse"):
        if column in df.columns:
            keep &= df[column].isna()
    keep &= not_finetuned(df)
    if "scope" in df.columns:
        keep &= df["scope"].fillna("global") == "global"
    df = df[keep & (df["fraction"] < 1)]
    df = df.drop_duplicates(subset=["run", "criterion", "fraction", "prediction"])
    unpruned = df[df["fraction"] == 0].groupby("run")["error"].mean()
    at_chance = sorted(unpruned.index[unpruned >= CHANCE_ERROR])
    df = df[~df["run"].isin(at_chance)]
    if df.empty:
        return df, at_chance
    primary = primary_criteria(df)
    return df[df["criterion"] == df["method"].map(primary)], at_chance


def tradeoff_points(records: pd.DataFrame) -> pd.DataFrame:
    """Mean test error (%) per (dataset, method, model, criterion, fraction), over the seeds and
    over the runs of that method and network the experiments share (e.g. BBB's priors), with
    compression = 1 / (1 - fraction)."""
    if records.empty:
        return pd.DataFrame()
    keys = ["dataset", "method", "model", "criterion", "fraction"]
    out = records.groupby(keys, as_index=False).agg(
        error=("error", "mean"), runs=("run", "nunique")
    )
    out["compression"] = 1.0 / (1.0 - out["fraction"])
    return out


def overview_figures(points: pd.DataFrame, results: Path) -> list[Path]:
    """One figure per dataset, ``overview_<dataset>.png``: test error (%) against compression
    (log x), one line with markers per (method, model); every figure on the same x and y limits."""
    if points.empty:
        return []
    x_low, x_high = points["compression"].min(), points["compression"].max()
    y_high = points["error"].max()
    xlim = (x_low / 1.15, x_high * 1.15)
    ylim = (0.0, 1.05 * y_high if y_high > 0 else 1.0)
    palette = plt.get_cmap("tab20").colors  # one colour per method, one marker per network
    colors = {m: palette[i % len(palette)] for i, m in enumerate(sorted(points["method"].unique()))}
    shapes = "os^vD<>Pp*hX"
    markers = {m: shapes[i % len(shapes)] for i, m in enumerate(sorted(points["model"].unique()))}
    paths = []
    for dataset in sorted(points["dataset"].unique()):
        fig, ax = plt.subplots(figsize=(8, 5))
        sel = points[points["dataset"] == dataset]
        for (method, model, criterion), grp in sel.groupby(["method", "model", "criterion"]):
            grp = grp.sort_values("compression")
            ax.plot(
                grp["compression"],
                grp["error"],
                linestyle="-",
                marker=markers[model],
                color=colors[method],
                ms=4,
                label=f"{method} · {model} · {criterion}",
            )
        ax.set(
            xscale="log",
            xlim=xlim,
            ylim=ylim,
            xlabel="compression 1 / (1 − fraction of weights removed)",
            ylabel="test error (%)",
            title=f"{dataset}: mean weights, each method's own criterion, no retraining",
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        paths.append(save_figure(fig, results / f"overview_{dataset}.png"))
    return paths


def _date_range(df: pd.DataFrame) -> str:
    if "date" not in df.columns or df["date"].dropna().empty:
        return DASH
    days = sorted({str(d)[:10] for d in df["date"].dropna()})
    return days[0] if days[0] == days[-1] else f"{days[0]} to {days[-1]}"


def _machines(df: pd.DataFrame) -> str:
    """The machines that evaluated the records (records older than the field name none)."""
    if "machine" not in df.columns or df["machine"].dropna().empty:
        return DASH
    return "; ".join(sorted({str(m) for m in df["machine"].dropna()}))


def _commits(df: pd.DataFrame) -> str:
    """The commits that wrote the records: all of them if few, else the count and the commits
    of the oldest and the newest record."""
    if "commit" not in df.columns or df["commit"].dropna().empty:
        return DASH
    commits = sorted({str(c) for c in df["commit"].dropna()})
    if len(commits) <= 3 or "date" not in df.columns:
        return ", ".join(commits)
    dated = df.dropna(subset=["commit", "date"]).sort_values("date")
    oldest, newest = dated.iloc[0], dated.iloc[-1]
    return (
        f"{len(commits)} commits, from {oldest['commit']} (oldest record, "
        f"{str(oldest['date'])[:10]}) to {newest['commit']} (newest, {str(newest['date'])[:10]})"
    )


def _values(df: pd.DataFrame, column: str) -> str:
    if column not in df.columns:
        return DASH
    values = sorted({str(v) for v in df[column].dropna()})
    return ", ".join(values) or DASH


def write_overview(
    specs: dict[str, dict | None],
    results: Path,
    times_path: Path | None = None,
    scale: str | None = None,
) -> Path:
    """Write ``results/README.md`` (and the overview figures) for the experiments of ``specs``
    (``name -> table declaration``, in the order given) from the records under ``results``."""
    results = Path(results)
    times = read_times(times_path)
    frames = {name: read_records(results / f"{name}.records.json") for name in specs}
    pooled = [f for f in frames.values() if not f.empty]
    everything = pd.concat(pooled, ignore_index=True) if pooled else pd.DataFrame()
    scales = _values(everything, "scale")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = ["# Results overview", ""]
    out += [
        f"- scale: **{scales if scales != DASH else (scale or DASH)}**",
        f"- records written by: {_commits(everything)}",
        f"- machine of the records: {_machines(everything)}",
        f"- dates of the records: {_date_range(everything)}",
        f"- total wall time: {_minutes(times.get('total'))} min "
        "(the whole `make reproduce-tables`, start to end: venv, data and every experiment "
        "below; experiments that ran side by side overlap)",
        f"- overview written by commit {git_commit()} on {now}",
        "",
        "One row per table; the headline is one cell of that table (ours, mean ± sample std "
        "over seeds; † one seed only), beside the published number of the same cell where the "
        "source has one. Wall time: that experiment's training, pruning and table, start to "
        "end (a run another experiment trained already is not trained again).",
        "",
    ]
    header = ["experiment", "headline", "ours", "published", "wall time (min)", "figures"]
    out += [markdown_row(header), "|" + "---|" * len(header)]
    for name, spec in specs.items():
        df = frames[name]
        headline = headline_of(name, spec, df)
        table = f"[{name}]({name}.md)" if (results / f"{name}.md").exists() else name
        if df.empty:
            table += " (no records)"
        figures = ", ".join(
            f"[{p.stem[len(name) + 1 :]}]({p.name})" for p in figure_files(name, results)
        )
        cells = [table]
        cells += [DASH] * 3 if headline is None else [*vars(headline).values()]
        cells += [_minutes(times.get(name)), figures or DASH]
        out.append(markdown_row(cells))
    out.append("")
    records, at_chance = figure_records(list(frames.values()))
    figures = overview_figures(tradeoff_points(records), results)
    if figures:
        out += [
            "## Error against compression",
            "",
            "Test error (%) of the mean weights against compression 1 / (1 − fraction of "
            "prunable weights removed), log scale, pooled over the experiments above: one line "
            "per method and network, each method pruned by its own criterion (|μ|/σ for BBB, "
            "log α for Sparse VD, PIP for SS-VI; |w| for methods without one), no retraining, "
            "mean over seeds and over the runs of one method and network that the experiments "
            "train with different settings (e.g. BBB's priors); controls and a method's own "
            "threshold rule are left out, and so are runs whose unpruned network is at chance "
            f"(test error >= {CHANCE_ERROR:g} %: {len(at_chance)} here, e.g. networks trained on "
            "shuffled labels). Every figure has the same axes.",
            "",
        ]
        for path in figures:
            out += [
                f"### {path.stem.removeprefix('overview_')}",
                "",
                f"![{path.stem}]({path.name})",
            ]
            out.append("")
    path = results / README
    write_text(path, "\n".join(out))
    shown = sum(1 for s in specs.values() if (s or {}).get("headline"))
    print(f"wrote {path} ({len(specs)} experiments, {shown} headlines, {len(figures)} figures)")
    return path


def experiment_specs(names: list[str], scale: str) -> dict[str, dict | None]:
    """``name -> table declaration`` of each experiment, composed by Hydra as ``bbbprune table
    experiment=<name> scale=<scale>`` composes it (inherited settings included)."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    out = {}
    for name in names:
        try:
            cfg = compose(config_name="config", overrides=[f"experiment={name}", f"scale={scale}"])
        except HydraException as exc:
            raise UserError(f"overview.experiments: cannot compose experiment {name!r}") from exc
        out[name] = OmegaConf.to_container(cfg.table, resolve=True) if cfg.get("table") else None
    return out


def write_overview_from_config(cfg) -> Path:
    """``bbbprune overview``: ``overview.experiments`` (null: every experiment whose records are
    in the results folder), ``overview.times`` (the TSV of wall times, or null)."""
    from .table import results_folder

    results = results_folder(cfg)
    names = cfg.overview.experiments
    if names is None:
        names = sorted(p.name.removesuffix(".records.json") for p in results.glob("*.records.json"))
    names = [str(n) for n in names]
    if not names:
        raise UserError(f"no experiments: {results} holds no records (run bbbprune table first)")
    times = Path(str(cfg.overview.times)) if cfg.overview.times else None
    return write_overview(
        experiment_specs(names, str(cfg.scale.name)), results, times, cfg.scale.name
    )
