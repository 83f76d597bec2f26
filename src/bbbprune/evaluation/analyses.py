"""Analyses of a pruned run: what tables and figures show beyond the pruning records, computed
when the run is pruned and written to ``analyses/<name>.json`` (bbbprune.evaluation.records), so
that ``bbbprune table`` reads files only and never loads a model or a dataset.

A run computes the ones its experiment's table asks for through its figures and sections
(bbbprune.evaluation.records.ANALYSIS_READERS):

  * ``weights``: histograms of the prunable weights' point values (μ for Bayesian layers, clipped
    to ±0.3; Blundell et al. 2015, Fig. 1) and, where every layer has a posterior σ, of the
    signal-to-noise ratio 10·log10(|μ|/σ) in dB (floored at −60 dB);
  * ``log_alpha``: per Sparse VD layer, the histogram of the effective log α with the share of
    weights the method's threshold keeps (Molchanov et al. 2017, Fig. 1);
  * ``first_layer_masks``: for a 784-input first layer pruned by the method's own rule, the kept
    outgoing weights of every input pixel and the masks of the units that keep the most;
  * ``node_sweep``: test error with a fraction of the hidden neurons kept (bbbprune.evaluation
    .node_sweep);
  * ``feature_selection``: which simulated features a spike-and-slab network keeps
    (bbbprune.evaluation.selection).

Histograms are stored as bin edges and counts (numpy's bins over the data range), from which a
figure draws exactly the histogram of the values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..layers import prunable_layers
from ..layers.spike_slab import spike_slab_layers
from ..methods import Method
from ..nets.models import MLP
from ..storage import write_json
from .node_sweep import node_sweep
from .records import RECORDS, analysis_path
from .selection import feature_selection

WEIGHT_CLIP = 0.3
WEIGHT_BINS = 240
SNR_FLOOR_DB = 60
SNR_BINS = 200
LOG_ALPHA_BINS = 80
MASK_UNITS = 8


def histogram(values: torch.Tensor, bins: int) -> dict:
    """Edges and counts of ``bins`` equal-width bins over the range of ``values``."""
    counts, edges = np.histogram(values.detach().cpu().double().numpy(), bins=bins)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


@dataclass
class PrunedRun:
    """What an analysis may look at: the run's directory (its pruning records are written),
    config, method and trained model, and ``load_data()`` for its TensorData."""

    run_dir: Path
    cfg: object
    method: Method
    model: nn.Module
    load_data: Callable


def weights(run: PrunedRun) -> dict:
    layers = list(prunable_layers(run.model).values())
    mu = torch.cat([m.point_weight().detach().flatten() for m in layers])
    out = {"weights": histogram(mu.clamp(-WEIGHT_CLIP, WEIGHT_CLIP), WEIGHT_BINS), "snr_db": None}
    if all(hasattr(m, "weight_sigma") for m in layers):  # a posterior σ in every layer
        sigma = torch.cat([m.weight_sigma().detach().flatten() for m in layers])
        db = (10 * torch.log10(mu.abs() / sigma)).clamp(-SNR_FLOOR_DB, None)
        out["snr_db"] = histogram(db, SNR_BINS)
    return out


def log_alpha(run: PrunedRun) -> dict:
    threshold = getattr(run.method, "threshold", None)
    out = []
    for name, layer in prunable_layers(run.model).items():
        if not hasattr(layer, "log_alpha"):  # Sparse VD layers only
            continue
        la = layer.effective_log_alpha().detach().flatten()
        kept = (la < threshold).float().mean().item() if threshold is not None else 1.0
        out.append({"layer": name, **histogram(la, LOG_ALPHA_BINS), "kept": kept})
    return {"threshold": threshold, "layers": out}


def first_layer_masks(run: PrunedRun) -> dict:
    masks = run.method.native_masks(run.model)
    if not masks:
        return {"per_pixel": None, "units": []}
    first = next(iter(masks.values())).detach().float().cpu()
    if first.dim() != 2 or first.shape[1] != 28 * 28:
        return {"per_pixel": None, "units": []}
    top = first.sum(1).argsort(descending=True)[:MASK_UNITS]
    return {
        "per_pixel": first.sum(0).tolist(),
        "units": [{"unit": u, "mask": first[u].tolist()} for u in top.tolist()],
    }


def sweep(run: PrunedRun) -> dict:
    if not isinstance(run.model, MLP):
        return {"score": None, "rows": []}
    return node_sweep(run.method, run.model, run.load_data())


def selection(run: PrunedRun) -> dict | None:
    if run.cfg.dataset.name != "simulated" or not spike_slab_layers(run.model):
        return None
    needed = ("pip_0.0000_global_mean.json", "native_-1.0000_global_mean.json")
    if not all((run.run_dir / RECORDS / n).exists() for n in needed):
        return None  # the full and the pruned network's records are not (yet) written
    return feature_selection(run.run_dir, run.cfg, run.method, run.model)


ANALYSES: dict[str, Callable[[PrunedRun], dict | None]] = {
    "weights": weights,
    "log_alpha": log_alpha,
    "first_layer_masks": first_layer_masks,
    "node_sweep": sweep,
    "feature_selection": selection,
}


def write_analyses(run: PrunedRun, names, overwrite: bool = False, log=print) -> list[str]:
    """Compute and write the named analyses (those missing, or all if ``overwrite``), each from
    the model as it is given (its state is restored after each). Returns the names written."""
    written = []
    state = {k: v.clone() for k, v in run.model.state_dict().items()}
    for name in names:
        path = analysis_path(run.run_dir, name)
        if path.exists() and not overwrite:
            continue
        with torch.no_grad():
            result = ANALYSES[name](run)
        run.model.load_state_dict(state)
        write_json(path, {"analysis": name, "run": run.run_dir.name, "result": result})
        written.append(name)
    if written:
        log(f"{run.run_dir.name}: analyses written: {', '.join(written)}")
    return written
