"""Table sections and figures from the runs' analyses rather than their pruning records: feature
selection on the simulated data and the hidden-neuron sweep, written when each run was pruned
(bbbprune.evaluation.analyses). An experiment asks for them with ``table.sections`` and
``table.figures``; each function gets the composed configs of the experiment's jobs."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..evaluation.records import METRICS  # noqa: E402
from ..run.identity import run_directory  # noqa: E402
from ..storage import read_json  # noqa: E402
from .gather import read_analysis  # noqa: E402
from .plotting import save_figure  # noqa: E402
from .render import markdown_row  # noqa: E402

FIGURE_ALPHA = 2.0  # selection_vs_D: the slice at this alpha (Saha et al., Figure 4)
FIGURE_D = 100  # selection_vs_alpha: the slice at this D (Figure 5)


def _finished_runs(jobs) -> list[Path]:
    out = []
    for job in jobs:
        run_dir = run_directory(job)
        if (run_dir / METRICS).exists() and read_json(run_dir / METRICS).get("finished"):
            out.append(run_dir)
    return out


def _selection_rows(jobs) -> list[dict]:
    rows = [read_analysis(d, "feature_selection") for d in _finished_runs(jobs)]
    rows = [r for r in rows if r is not None]
    return sorted(rows, key=lambda r: (r["D"], r["alpha"], r["seed"]))


def _sweeps(jobs) -> list[tuple[Path, dict]]:
    """(run directory, node sweep) of every finished run that has one."""
    found = [(d, read_analysis(d, "node_sweep")) for d in _finished_runs(jobs)]
    return [(d, s) for d, s in found if s is not None and s["rows"]]


def _mean_std(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}"


def feature_selection_section(jobs) -> list[str]:
    """One row per (D, α), seeds pooled (mean ± std where there are several)."""
    rows = _selection_rows(jobs)
    lines = [
        "## Feature selection (PIP ≥ threshold on the input features)",
        "",
        "| D | α | seeds | relevant selected | false positives | test MSE full | test MSE pruned "
        "| kept architecture (seed 1st) | corr(ψ, PIP) | corr(ψ, γ‖μ‖) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    submodel = all("mse_pruned_submodel" in r for r in rows)
    if submodel:  # the pruned network's own posterior mean (weights μ), after "test MSE pruned"
        lines[2] = lines[2].replace(
            "test MSE pruned ", "test MSE pruned (γμ) | test MSE pruned (μ) "
        )
        lines[3] += "---|"
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["D"], r["alpha"]), []).append(r)
    for (d, alpha), rs in groups.items():
        widths = "-".join(str(w) for w in rs[0]["kept_widths"])
        lines.append(
            f"| {d} | {alpha:g} | {len(rs)} | "
            + " | ".join(
                [
                    _mean_std([r["true_positives"] for r in rs], "{:.1f}")
                    + f" of {rs[0]['relevant']}",
                    _mean_std([r["false_positives"] for r in rs], "{:.1f}"),
                    _mean_std([r["mse_full"] for r in rs], "{:.3f}"),
                    _mean_std([r["mse_pruned"] for r in rs], "{:.3f}"),
                    *(
                        [_mean_std([r["mse_pruned_submodel"] for r in rs], "{:.3f}")]
                        if submodel
                        else []
                    ),
                    widths,
                    _mean_std([r["corr_pip"] for r in rs], "{:.3f}"),
                    _mean_std([r["corr_weight"] for r in rs], "{:.3f}"),
                ]
            )
            + " |"
        )
    tuned = [r for r in rows if "mse_full_ft" in r]
    if tuned:
        lines += [
            "",
            f"After {tuned[0]['finetune_epochs']} epochs of retraining both networks (masks "
            "fixed, learning rate × prune.finetune_lr_scale):",
            "",
            "| D | α | test MSE full, retrained | test MSE pruned, retrained |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['D']} | {r['alpha']:g} | {r['mse_full_ft']:.3f} | {r['mse_pruned_ft']:.3f} |"
            for r in tuned
        ]
    lines += [
        "",
        "- relevant selected / false positives: relevant (noise) features with PIP ≥ the "
        "threshold (0.5); test MSE: mean squared error on the test split with the posterior-mean "
        "weights, full (nothing pruned) and pruned (every node with PIP < 0.5 removed); the noise "
        "variance is 1, so 1 is the best possible MSE; pruned (γμ): the posterior-mean weights "
        "γ_j μ_ij with the removed nodes zeroed (prediction `mean`); pruned (μ): the posterior "
        "mean given the pruned submodel, E[W | z = 1 on the kept nodes] = μ (prediction "
        "`conditional`, the median-probability model's own prediction); corr: Pearson correlation over the D "
        "features between the true importance ψ (0 for noise features) and the estimate.",
        "",
    ]
    return lines


def node_sweep_section(jobs) -> list[str]:
    """Rows = kept fraction of hidden neurons, columns = runs: test error (hidden neurons left)."""
    sweeps = [(read_json(d / METRICS)["method"], s) for d, s in _sweeps(jobs)]
    if not sweeps:
        return []
    header = ["hidden neurons kept"] + [f"{m} (by {s['score']})" for m, s in sweeps]
    lines = [
        "## Node sweep: error % (hidden neurons left after the rebuild) at a kept fraction",
        "",
        markdown_row(header),
        "|" + "---|" * len(header),
    ]
    for i, row in enumerate(sweeps[0][1]["rows"]):
        cells = [f"{100 * row['keep']:g} %"]
        for _, s in sweeps:
            r = s["rows"][i]
            cells.append(f"{r['error']:.2f} ({r['hidden_kept']} of {r['hidden_total']})")
        lines.append(markdown_row(cells))
    lines += [
        "",
        "- in every hidden layer the lowest-scoring neurons are removed (their outgoing "
        "weights zeroed), no retraining; mean prediction; the count in brackets is what "
        "structured.shrink keeps (a neuron whose inputs all died goes too).",
        "",
    ]
    return lines


SECTIONS = {"feature_selection": feature_selection_section, "node_sweep": node_sweep_section}


def render_sections(names, jobs) -> list[str]:
    out = []
    for name in names:
        if name not in SECTIONS:
            raise UserError(f"unknown table section {name!r}; valid: {', '.join(SECTIONS)}")
        out += SECTIONS[name](jobs)
    return out


def _selection_figure(jobs, path: Path, x_key: str, fixed_key: str, fixed_value) -> Path | None:
    rows = [r for r in _selection_rows(jobs) if math.isclose(r[fixed_key], fixed_value)]
    if not rows:
        return None
    xs = sorted({r[x_key] for r in rows})

    def series(key):
        groups = [[r[key] for r in rows if r[x_key] == x] for x in xs]
        return [statistics.mean(g) for g in groups], [
            statistics.stdev(g) if len(g) > 1 else 0.0 for g in groups
        ]

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("true_positives", "relevant selected"), ("false_positives", "false pos.")):
        m, s = series(key)
        left.errorbar(xs, m, yerr=s, marker="o", capsize=3, label=label)
    left.axhline(rows[0]["relevant"], color="grey", lw=0.8, ls="--")
    left.set(xlabel=x_key, ylabel="features (PIP ≥ 0.5)", title="feature selection")
    left.legend(fontsize=8)
    for key, label in (("mse_full", "full network"), ("mse_pruned", "pruned (PIP ≥ 0.5)")):
        m, s = series(key)
        right.errorbar(xs, m, yerr=s, marker="o", capsize=3, label=label)
    right.set(xlabel=x_key, ylabel="test MSE (noise variance 1)", title="test error")
    right.legend(fontsize=8)
    if x_key == "D":
        left.set_xscale("log")
        right.set_xscale("log")
    fig.suptitle(f"SS-VI on simulated data, {fixed_key} = {fixed_value:g}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def selection_vs_d(jobs, path: Path) -> Path | None:
    return _selection_figure(jobs, path, "D", "alpha", FIGURE_ALPHA)


def selection_vs_alpha(jobs, path: Path) -> Path | None:
    return _selection_figure(jobs, path, "alpha", "D", FIGURE_D)


def importance_correlation(jobs, path: Path) -> Path | None:
    """Saha et al., Figures 2–3: correlation of true and estimated importance, every run."""
    rows = _selection_rows(jobs)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    labels = [f"D={r['D']}, α={r['alpha']:g}" for r in rows]
    x = range(len(rows))
    ax.plot(x, [r["corr_pip"] for r in rows], "o", label="corr(ψ, PIP)")
    ax.plot(x, [r["corr_weight"] for r in rows], "s", label="corr(ψ, γ‖μ‖)")
    ax.set_xticks(list(x), labels, rotation=70, fontsize=6)
    ax.set(ylabel="Pearson correlation", ylim=(min(0, ax.get_ylim()[0]), 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def node_sweep_figure(jobs, path: Path) -> Path | None:
    runs = _sweeps(jobs)
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for d, s in runs:
        method = read_json(d / METRICS)["method"]
        xs = [r["hidden_kept"] / r["hidden_total"] * 100 for r in s["rows"]]
        ax.plot(xs, [r["error"] for r in s["rows"]], "o-", label=f"{method} (by {s['score']})")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="hidden neurons kept (%)",
        ylabel="test error (%)",
        title="node pruning without retraining",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


FIGURES = {
    "selection_vs_D": selection_vs_d,
    "selection_vs_alpha": selection_vs_alpha,
    "importance_correlation": importance_correlation,
    "node_sweep": node_sweep_figure,
}
