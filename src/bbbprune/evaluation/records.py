"""The records of a run, in one place: what each holds and where it lives.

* ``metrics.json`` (``run_record``): the facts of the training run — method (with its
  ``describe()``: prior, options), dataset, model, seed, scale, epochs, parameter counts, the
  per-epoch history, the test metrics of the mean weights (the other prediction modes' are in
  the unpruned records), the machine, commit and date;
* ``records/<criterion>_<fraction>_<scope>[_ft<k>]_<mode>.json`` (``pruning_record``): one
  pruning evaluation — criterion, fraction, scope, fine-tuning epochs, prediction mode, the
  sparsity reached (overall and per layer), the kept architecture (own rule), the test and
  validation metrics, what was measured of the pruned network (MACs, latency, export), the
  machine, commit and date;
* ``analyses/<name>.json``: what a table or figure shows beyond the pruning records (weight
  histograms, log α histograms, node sweeps, feature selection), computed when the run is
  pruned (bbbprune.evaluation.analyses), so that tables never load a model or a dataset.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from ..machine import machine_description
from ..storage import git_commit

METRICS = "metrics.json"
RECORDS = "records"
ANALYSES = "analyses"
NATIVE = "native"  # the criterion name of a method's own pruning rule (e.g. log α ≥ 3)


# each analysis and the table figures and sections that read it
ANALYSIS_READERS = {
    "weights": ("weight_histograms", "snr_density"),
    "log_alpha": ("log_alpha_histograms",),
    "first_layer_masks": ("first_layer_masks",),
    "node_sweep": ("node_sweep",),
    "feature_selection": (
        "feature_selection",
        "selection_vs_D",
        "selection_vs_alpha",
        "importance_correlation",
    ),
}


def analyses_for(table) -> list[str]:
    """The analyses a table config asks for through its ``figures`` and ``sections``."""
    if not table:
        return []
    wanted = {*(table.get("figures") or []), *(table.get("sections") or [])}
    return [name for name, readers in ANALYSIS_READERS.items() if wanted & set(readers)]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record_path(
    run_dir: Path, criterion: str, fraction: float, scope: str, finetune: int, mode: str
) -> Path:
    ft = f"_ft{finetune}" if finetune else ""
    return run_dir / RECORDS / f"{criterion}_{fraction:.4f}_{scope}{ft}_{mode}.json"


def analysis_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / ANALYSES / f"{name}.json"


def run_record(
    run: str,
    described: dict,
    *,
    dataset: str,
    model: str,
    seed: int,
    scale: str,
    epochs: int,
    n_train: int,
    parameters: int,
    prunable: int,
    history: list[dict],
    test: dict,
    device=None,
) -> dict:
    """The content of ``metrics.json`` for a finished run (``described``: Method.describe();
    ``device``: where it trained, named by ``machine``)."""
    return {
        "finished": True,
        "run": run,
        **described,
        "dataset": dataset,
        "model": model,
        "seed": int(seed),
        "scale": scale,
        "epochs": int(epochs),
        "n_train": n_train,
        "parameters": parameters,
        "prunable": prunable,
        "history": history,
        "test": test,
        "wall_time_per_epoch_s": sum(h["wall_time_s"] for h in history) / len(history),
        "machine": machine_description(device),
        "commit": git_commit(),
        "date": _now(),
    }


def pruning_record(
    run: str,
    metrics: dict,
    *,
    criterion: str,
    fraction: float,
    scope: str,
    finetune_epochs: int,
    prediction: str,
    samples: int,
    sparsity: dict,
    kept_widths: list[int] | None,
    measured: dict,
    ood_dataset: str | None,
    commit: str | None = None,
    device=None,
) -> dict:
    """One pruning evaluation (``metrics``: the run's metrics.json; ``sparsity``:
    bbbprune.pruning.masking.sparsity of the pruned model; ``measured``: its test and validation
    metrics and any structure, latency or export measurements)."""
    kept = sparsity["prunable"] - sparsity["removed"]
    return {
        "run": run,
        **{k: metrics[k] for k in ("method", "dataset", "model", "seed", "scale", "epochs")},
        "criterion": criterion,
        "fraction": fraction,
        "scope": scope,
        "finetune_epochs": finetune_epochs,
        "prediction": prediction,
        "samples": samples,
        "achieved_sparsity": sparsity["sparsity"],
        "per_layer_sparsity": sparsity["per_layer"],
        "prunable": sparsity["prunable"],
        "kept": kept,
        "compression": sparsity["prunable"] / max(kept, 1),
        "kept_widths": kept_widths,
        **measured,
        "ood_dataset": ood_dataset,
        "machine": machine_description(device),
        "commit": commit or git_commit(),
        "date": _now(),
    }


def record_seed(run: str, criterion: str, fraction: float, scope: str, mode: str) -> int:
    """The seed of one record's sampled predictive: a hash of the run's name and the record's
    identity (criterion, fraction, scope, prediction mode). Evaluating the same record again
    draws the same weight samples and so gives the same numbers; records stay independent."""
    blob = f"{run}|{criterion}|{fraction:.4f}|{scope}|{mode}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)
