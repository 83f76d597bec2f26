"""Records and metrics of an experiment's runs, read from disk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from ..evaluation.records import METRICS, RECORDS, analysis_path
from ..run.failures import describe_missing, failure_of
from ..run.identity import run_directory
from ..storage import read_json

# The method's setting as explicit fields of every record (Method.describe()), so that table rows
# select on values, never on a description string: the prior of Bayes by Backprop, the dropout
# rate, EM-MCMC's spike and slab decays and EM start, MOPED's delta, the
# complexity cost's scale.
SETTING_FIELDS = (
    "prior_kind",
    "prior_pi",
    "prior_neg_log_sigma1",
    "prior_neg_log_sigma2",
    "dropout",
    "slab_decay",
    "spike_decay",
    "em_start",
    "moped_delta",
    "kl_scale",
)


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
            **{k: metrics.get(k) for k in SETTING_FIELDS},
            "final_train_accuracy": metrics["history"][-1]["train_accuracy"],
            "final_val_accuracy": metrics["history"][-1]["val_accuracy"],
        }
        if failure_of(run_dir):  # trained, but a later step (pruning) failed
            missing.append(describe_missing(run_dir))
        for path in sorted((run_dir / RECORDS).glob("*.json")):
            records.append({**run_facts, **read_json(path)})
    return pd.DataFrame(records), runs, missing


def read_analysis(run_dir: Path, name: str):
    """The result of a run's analysis (analyses/<name>.json), or None if it was not written."""
    path = analysis_path(run_dir, name)
    return read_json(path)["result"] if path.exists() else None


def missing_analyses(jobs, names) -> list[str]:
    """One line per finished run that lacks an analysis its table asks for."""
    out = []
    for job in jobs:
        run_dir = run_directory(job)
        metrics_file = run_dir / METRICS
        if not metrics_file.exists() or not read_json(metrics_file).get("finished"):
            continue
        lacking = [n for n in names if not analysis_path(run_dir, n).exists()]
        if lacking:
            out.append(
                f"{run_dir.name}: no {', '.join(lacking)} analysis (write it with `bbbprune "
                f"prune run={run_dir} experiment=<this experiment>`)"
            )
    return out
