"""Figures written next to the tables: loss curves, weight-value histograms (Blundell et al.
2015, Fig. 1 style), the density of the signal-to-noise ratio in dB, 10·log10(|μ|/σ), and for
Sparse VD the per-layer log α histograms and the first layer's kept weights as 28×28 images
(Molchanov et al. 2017, Fig. 1 and Sec. 5)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..evaluation.records import METRICS, RECORDS  # noqa: E402
from ..run.identity import run_directory  # noqa: E402
from ..storage import read_json  # noqa: E402
from .analyses import FIGURES as ANALYSIS_FIGURES  # noqa: E402
from .gather import gather, read_analysis  # noqa: E402
from .plotting import save_figure  # noqa: E402
from .tradeoff import tradeoff_figure  # noqa: E402

DB_FLOOR = 60


def _finished(jobs):
    for job in jobs:
        run_dir = run_directory(job)
        if (run_dir / METRICS).exists() and read_json(run_dir / METRICS).get("finished"):
            yield job, run_dir, read_json(run_dir / METRICS)


def _label(m: dict) -> str:
    return f"{m['method']} · {m['dataset']} · {m['model']}"


def loss_curves(jobs, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for _, _, m in _finished(jobs):
        ep = [h["epoch"] for h in m["history"]]
        axes[0].plot(ep, [h["train_loss"] for h in m["history"]], label=_label(m))
        axes[1].plot(ep, [100 * (1 - h["val_accuracy"]) for h in m["history"]], label=_label(m))
    axes[0].set(xlabel="epoch", ylabel="training loss (per example)", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="validation error (%)", yscale="log")
    axes[1].legend(fontsize=6)
    return save_figure(fig, path)


def _hist(ax, h: dict, **style) -> None:
    """Draw a stored histogram (bin edges and counts) as matplotlib would draw the values."""
    edges = h["edges"]
    ax.hist(edges[:-1], bins=edges, weights=h["counts"], **style)


def _with_analysis(jobs, name: str):
    """(metrics, analysis result) of every finished run that has the analysis."""
    for _, run_dir, m in _finished(jobs):
        result = read_analysis(run_dir, name)
        if result is not None:
            yield m, result


def weight_histograms(jobs, path: Path) -> Path | None:
    """One panel per run on a shared axis: the density of the weight values (μ for BBB), on a
    log scale so that the tails show (Blundell et al. 2015, Fig. 1)."""
    runs = list(_with_analysis(jobs, "weights"))
    if not runs:
        return None
    fig, axes = plt.subplots(
        len(runs), 1, figsize=(7, 1.3 * len(runs) + 0.8), sharex=True, squeeze=False
    )
    for ax, (m, result) in zip(axes[:, 0], runs, strict=True):
        _hist(ax, result["weights"], density=True, log=True)
        ax.set_ylabel("density", fontsize=7)
        ax.set_title(_label(m), fontsize=8)
    axes[-1, 0].set_xlabel("weight value (μ for Bayes by Backprop), clipped to ±0.3")
    fig.tight_layout()
    return save_figure(fig, path)


def snr_density(jobs, path: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for m, result in _with_analysis(jobs, "weights"):
        if result["snr_db"] is None:
            continue
        _hist(ax, result["snr_db"], density=True, histtype="step", label=_label(m))
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(
        xlabel=f"signal-to-noise ratio 10·log10(|μ|/σ) (dB; below −{DB_FLOOR} dB drawn at "
        f"−{DB_FLOOR})",
        ylabel="density",
    )
    ax.legend(fontsize=6)
    return save_figure(fig, path)


def log_alpha_histograms(jobs, path: Path) -> Path | None:
    """One row per Sparse VD run, one panel per layer: the histogram of log α (effective, i.e.
    with the group variable for svd_group) with the pruning threshold drawn as a line."""
    runs = [(m, r) for m, r in _with_analysis(jobs, "log_alpha") if r["layers"]]
    if not runs:
        return None
    width = max(len(r["layers"]) for _, r in runs)
    fig, axes = plt.subplots(
        len(runs), width, figsize=(3.2 * width, 2.4 * len(runs)), squeeze=False
    )
    for row, (m, result) in zip(axes, runs, strict=True):
        threshold = result["threshold"]
        for ax, layer in zip(row, result["layers"], strict=False):
            _hist(ax, layer, log=True)
            if threshold is not None:
                ax.axvline(threshold, color="red", lw=1)
            ax.set_title(
                f"{m['method']} {layer['layer']}: {100 * layer['kept']:.1f}% kept", fontsize=8
            )
            ax.set_xlabel("log α", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def first_layer_masks(jobs, path: Path, n_units: int = 8) -> Path | None:
    """The first layer of each run with a native pruning rule, as 28×28 images: the number of
    kept outgoing weights of every input pixel, then the kept-weight masks of the ``n_units``
    hidden units that keep the most weights (white = kept)."""
    rows = [(m, r) for m, r in _with_analysis(jobs, "first_layer_masks") if r["per_pixel"]]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), n_units + 1, figsize=(1.4 * (n_units + 1), 1.7 * len(rows)))
    axes = axes.reshape(len(rows), n_units + 1)
    for row, (m, result) in zip(axes, rows, strict=True):
        row[0].imshow(np.reshape(result["per_pixel"], (28, 28)), cmap="viridis")
        row[0].set_title(f"{m['method']}: kept per pixel", fontsize=6)
        for ax, unit in zip(row[1:], result["units"][:n_units], strict=False):
            ax.imshow(np.reshape(unit["mask"], (28, 28)), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"unit {unit['unit']}: {int(sum(unit['mask']))}", fontsize=6)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


def accuracy_sparsity(jobs, path: Path) -> Path | None:
    """Test accuracy against achieved sparsity, one panel per dataset: a line per method and
    fraction-sweep criterion (mean weights), a marker per method's own pruning rule ("native",
    every prediction mode)."""
    curves: dict = {}
    for _, run_dir, _ in _finished(jobs):
        for rec_path in sorted((run_dir / RECORDS).glob("*.json")):
            r = read_json(rec_path)
            native = r["criterion"] == "native"
            if not native and (r["prediction"] != "mean" or r["criterion"] == "random"):
                continue
            key = (
                r["dataset"],
                f"{r['method']} · {r['criterion']}",
                r["prediction"],
            )
            curves.setdefault(key, []).append((r["achieved_sparsity"], r["accuracy"], native))
    if not curves:
        return None
    datasets = sorted({k[0] for k in curves}, key=lambda d: (d != "mnist", d))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for (d, label, pred), pts in sorted(curves.items()):
            if d != ds:
                continue
            pts.sort()
            xs, ys = [100 * p[0] for p in pts], [100 * p[1] for p in pts]
            style = dict(marker="*", ms=11, ls="none") if pts[0][2] else dict(marker=".", lw=1)
            ax.plot(xs, ys, label=f"{label} ({pred})", **style)
        lowest = min(100 * a for (d, _, _), pts in curves.items() if d == ds for _, a, _ in pts)
        ax.set(title=ds, xlabel="weights removed (%)", ylabel="test accuracy (%)")
        ax.set_ylim(max(lowest - 1, 50), 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return save_figure(fig, path)


def calibration_vs_sparsity(jobs, path: Path) -> Path | None:
    """Test error and ECE against the share of weights kept (log scale, 100 % on the left),
    one line per method and prediction mode (mean weights solid, sampled predictive dashed),
    mean ± std over seeds; a method's own rule ("native") is one marker per seed."""
    df, _, _ = gather(jobs)
    if df.empty or "ece" not in df.columns:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    swept = df[df["criterion"] != "native"]
    for (method, mode), grp in swept.groupby(["method", "prediction"], sort=False):
        stats = grp.groupby("fraction")[["achieved_sparsity", "error", "ece"]].agg(["mean", "std"])
        kept = 100 * (1 - stats[("achieved_sparsity", "mean")])
        style = "-" if mode == "mean" else "--"
        for ax, field in zip(axes, ("error", "ece"), strict=True):
            ax.errorbar(
                kept,
                stats[(field, "mean")],
                yerr=stats[(field, "std")].fillna(0),
                fmt=style + "o",
                ms=3,
                capsize=2,
                label=f"{method} ({mode})",
            )
    for (method, mode), grp in df[df["criterion"] == "native"].groupby(["method", "prediction"]):
        for ax, field in zip(axes, ("error", "ece"), strict=True):
            ax.plot(
                100 * (1 - grp["achieved_sparsity"]),
                grp[field],
                "x",
                ms=6,
                label=f"{method} ({mode}), own rule",
            )
    for ax, label in zip(axes, ("test error (%)", "expected calibration error"), strict=True):
        ax.set(xscale="log", xlabel="weights kept (%)", ylabel=label)
        ax.set_xticks([100, 50, 20, 10, 5, 2, 1], labels=["100", "50", "20", "10", "5", "2", "1"])
        ax.invert_xaxis()
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


FIGURES = {
    "calibration_vs_sparsity": calibration_vs_sparsity,
    "loss_curves": loss_curves,
    "weight_histograms": weight_histograms,
    "snr_density": snr_density,
    "log_alpha_histograms": log_alpha_histograms,
    "first_layer_masks": first_layer_masks,
    "accuracy_sparsity": accuracy_sparsity,
    "tradeoff": lambda jobs, path: tradeoff_figure(gather(jobs)[0], path),  # error, ECE vs comp.
}
FIGURES.update(ANALYSIS_FIGURES)  # feature selection and node sweep (bbbprune.report.analyses)


def draw_figures(names, jobs, results: Path, experiment: str) -> list[Path]:
    out = []
    for name in names:
        if name not in FIGURES:
            raise UserError(f"unknown figure {name!r}; valid: {', '.join(FIGURES)}")
        p = FIGURES[name](jobs, Path(results) / f"{experiment}_{name}.png")
        if p is not None:
            out.append(p)
    return out
