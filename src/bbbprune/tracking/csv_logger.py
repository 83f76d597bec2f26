"""logger=csv: plain CSV files in the run directory, rewritten atomically at every call.

* ``metrics.csv``: one row per epoch (column ``epoch``), one column per metric of metrics.json's
  ``history`` (train_nll, train_kl, train_loss, val_error, lr, ...);
* ``pruning.csv``: one row per pruning record (criterion, fraction, scope, prediction, error,
  nll, ece, achieved_sparsity, ...);
* ``params.csv``: the flattened composed config (``key,value``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..storage import write_text
from .base import Backend, RunInfo


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class CSVBackend(Backend):
    name = "csv"

    def __init__(self, settings: dict, run: RunInfo):
        super().__init__(settings, run)
        self.path = Path(run.dir) / settings.get("file", "metrics.csv")
        self.rows: dict[int, dict] = {}
        self.columns: list[str] = ["epoch"]

    def log_params(self, params: dict[str, str]) -> None:
        rows = [{"key": k, "value": v} for k, v in {**self.run.tags, **params}.items()]
        write_text(self.path.with_name("params.csv"), _csv_text(["key", "value"], rows))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.rows.setdefault(step, {"epoch": step}).update(metrics)
        self.columns += [k for k in metrics if k not in self.columns]
        rows = [self.rows[s] for s in sorted(self.rows)]
        write_text(self.path, _csv_text(self.columns, rows))

    def log_records(self, records: list[dict], step: int) -> None:
        if not records:
            return
        columns: list[str] = []
        for rec in records:  # scalar fields; per-layer lists stay in the JSON records
            columns += [k for k, v in rec.items() if k not in columns and not _nested(v)]
        rows = [{k: rec.get(k) for k in columns} for rec in records]
        write_text(self.path.with_name("pruning.csv"), _csv_text(columns, rows))


def _nested(value) -> bool:
    return isinstance(value, list | dict)
