"""Records and metrics of an experiment's runs, read from disk."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig

from ..evaluation.records import METRICS, RECORDS
from ..run.failures import describe_missing, failure_of
from ..run.identity import run_directory
from ..storage import read_json


def gather(jobs: list[DictConfig]) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """Records and metrics of every job's run; the names of jobs not (yet) finished."""
    records, runs, missing = [], [], []
    for job in jobs:
        run_dir = run_directory(job)
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
