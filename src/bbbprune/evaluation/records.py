"""Where a run's records live: ``metrics.json`` (training facts and test metrics) and one JSON
file per pruning evaluation under ``records/``."""

from __future__ import annotations

METRICS = "metrics.json"


RECORDS = "records"
