"""Feature selection on the simulated data (Saha, Liu & Liang 2024, Figures 2–5): which input
features a spike-and-slab network keeps, against the features that truly drive the target.

For a finished run on ``dataset=simulated`` (bbbprune.data.simulated: the first ``relevant`` of the
D features matter, with true importances ψ_j):

  * selected: the features whose PIP γ_j (first layer) is ≥ the method's threshold;
    true positives = selected relevant features, false positives = selected noise features;
  * test MSE of the full network (posterior-mean weights, nothing pruned: the record of
    criterion ``pip`` at fraction 0) and of the pruned one (the method's own PIP rule: the
    ``native`` record), both with the mean prediction (weights γ μ); the pruned one also with
    the ``conditional`` prediction (``mse_pruned_submodel``: weights μ on the kept nodes, the
    posterior mean given the median-probability model), where the run has that record; and,
    where the run was also evaluated
    with ``prune.finetune_epochs=k``, both after k epochs of retraining with the masks fixed
    (``mse_full_ft``, ``mse_pruned_ft``);
  * the correlation (Pearson, over all D features) between the true importance (ψ_j, 0 for noise
    features) and two estimates: the PIP γ_j, and γ_j·‖μ_{·j}‖₂, the posterior-mean size of the
    feature's outgoing weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.simulated import true_importance
from ..errors import UserError
from ..layers.spike_slab import spike_slab_layers
from ..storage import read_json
from .records import RECORDS


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def feature_selection(run_dir: Path, cfg, method, model) -> dict:
    """The selection facts above for one run: its directory (for its pruning records), config,
    method and trained model."""
    if cfg.dataset.name != "simulated":
        raise UserError(f"feature selection needs a run on dataset=simulated, not {run_dir}")
    layers = list(spike_slab_layers(model).values())
    if not layers:
        raise UserError(f"feature selection needs a spike-and-slab run (method=ssvi): {run_dir}")
    first = layers[0]
    with torch.no_grad():
        pip = first.pip().numpy().astype(float)
        size = (first.point_weight().norm(dim=0)).numpy().astype(float)
    d, p = int(cfg.dataset.D), int(cfg.dataset.relevant)
    truth = true_importance(d, p, float(cfg.dataset.psi_min))
    selected = pip >= float(method.threshold)
    records = Path(run_dir) / RECORDS
    full = read_json(records / "pip_0.0000_global_mean.json")
    pruned = read_json(records / "native_-1.0000_global_mean.json")
    submodel = records / "native_-1.0000_global_conditional.json"
    if submodel.exists():
        submodel_mse = {"mse_pruned_submodel": read_json(submodel)["error"]}
    else:
        submodel_mse = {}
    tuned = {}  # the same two networks after prune.finetune_epochs of retraining, if run
    for path in sorted(records.glob("native_-1.0000_global_ft*_mean.json")):
        ft = path.name.split("_ft")[1].split("_")[0]
        full_ft = records / f"pip_0.0000_global_ft{ft}_mean.json"
        if full_ft.exists():
            tuned = {
                "finetune_epochs": int(ft),
                "mse_full_ft": read_json(full_ft)["error"],
                "mse_pruned_ft": read_json(path)["error"],
            }
    return {
        **tuned,
        **submodel_mse,
        "D": d,
        "relevant": p,
        "alpha": float(cfg.dataset.alpha),
        "seed": int(cfg.seed),
        "true_positives": int(selected[:p].sum()),
        "false_positives": int(selected[p:].sum()),
        "mse_full": full["error"],
        "mse_pruned": pruned["error"],
        "kept_widths": pruned["kept_widths"],
        "corr_pip": _pearson(truth, pip),
        "corr_weight": _pearson(truth, size),
        "pip_relevant_min": float(pip[:p].min()),
        "pip_noise_max": float(pip[p:].max()) if d > p else float("nan"),
    }
