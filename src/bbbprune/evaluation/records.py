"""Where a run's records live: ``metrics.json`` (training facts and test metrics) and one JSON
file per pruning evaluation under ``records/``."""

from __future__ import annotations

import hashlib

METRICS = "metrics.json"


RECORDS = "records"


def record_seed(run: str, criterion: str, fraction: float, scope: str, mode: str) -> int:
    """The seed of one record's sampled predictive: a hash of the run's name and the record's
    identity (criterion, fraction, scope, prediction mode). Evaluating the same record again
    draws the same weight samples and so gives the same numbers; records stay independent."""
    blob = f"{run}|{criterion}|{fraction:.4f}|{scope}|{mode}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)
