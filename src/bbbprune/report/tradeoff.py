"""Trade-off figures of the reporting protocol (Blalock et al. 2020, Sec. 7): test error against
compression and ECE against compression, one row of two panels per dataset with every method,
criterion and control of that dataset on the same axes. A pure function of the records."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .plotting import save_figure  # noqa: E402

PANELS = (("error", "test error (%)"), ("ece", "expected calibration error"))


def _curve_label(key: tuple) -> str:
    method, criterion, reference, mode = key
    of = f" (vs {reference})" if isinstance(reference, str) else ""
    return f"{method} · {criterion}{of} · {mode}"


def tradeoff_figure(df: pd.DataFrame, path: Path) -> Path | None:
    """Error and ECE against compression = prunable / kept weights (log scale), mean over seeds
    at each fraction; a method's own rule ("native") is one marker per record; controls at
    matched sparsity are dashed. None if there is nothing to draw."""
    needed = {"dataset", "method", "criterion", "prediction", "compression", "error"}
    if df.empty or not needed <= set(df.columns):
        return None
    df = df.copy()
    if "reference_criterion" not in df.columns:
        df["reference_criterion"] = None
    if "ece" not in df.columns:
        df["ece"] = float("nan")
    df["reference_criterion"] = (
        df["reference_criterion"].astype(object).where(df["reference_criterion"].notna(), "-")
    )
    datasets = sorted(df["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 4.2 * len(datasets)), squeeze=False)
    keys = ["method", "criterion", "reference_criterion", "prediction"]
    for row, dataset in zip(axes, datasets, strict=True):
        sel = df[df["dataset"] == dataset]
        swept = sel[sel["criterion"] != "native"]
        for key, grp in swept.groupby(keys, sort=True):
            stats = grp.groupby("fraction")[["compression", "error", "ece"]].mean()
            stats = stats.sort_values("compression")
            style = "--" if key[2] != "-" else "-"
            label = _curve_label(tuple(None if k == "-" else k for k in key))
            for ax, (field, _) in zip(row, PANELS, strict=True):
                ax.plot(stats["compression"], stats[field], style + "o", ms=3, label=label)
        for key, grp in sel[sel["criterion"] == "native"].groupby(["method", "prediction"]):
            for ax, (field, _) in zip(row, PANELS, strict=True):
                ax.plot(
                    grp["compression"], grp[field], "*", ms=9, label=f"{key[0]} own rule · {key[1]}"
                )
        for ax, (_, ylabel) in zip(row, PANELS, strict=True):
            ax.set(xscale="log", xlabel="compression (prunable / kept weights)", ylabel=ylabel)
            ax.set_title(dataset)
            ax.grid(alpha=0.3)
        row[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_figure(fig, Path(path))
