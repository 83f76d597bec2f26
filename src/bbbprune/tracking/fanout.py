"""The Tracker: one object the training loop talks to, passing every call on to each backend.

Tracking never breaks training: a backend that raises (a server down, a disk full) is reported
once, as a TrackingWarning, and not called again; the run's JSON records (metrics.json, records/)
stay complete and remain the source of truth."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..storage import read_json
from .base import Backend, RunInfo, is_number


class TrackingWarning(UserWarning):
    """A tracking backend failed; training goes on without it."""


class Tracker:
    """Fan-out over the open backends; a context manager that closes them (status failed when
    the block raised)."""

    def __init__(self, run: RunInfo | None = None, backends: list[Backend] | None = None):
        self.run = run
        self.backends: list[Backend] = list(backends or [])
        self.last_step = 0

    def _each(self, call) -> None:
        for backend in list(self.backends):
            self.guard(backend.name, lambda b=backend: call(b))

    def guard(self, name: str, call):
        """Run ``call``; on any exception warn once naming the backend, drop it, return None."""
        try:
            return call()
        except Exception as exc:  # tracking must never stop training
            self.backends = [b for b in self.backends if b.name != name]
            warnings.warn(
                f"bbbprune: tracking with the {name} logger failed ({type(exc).__name__}: "
                f"{exc}); training goes on without it (the run's JSON records are complete)",
                TrackingWarning,
                stacklevel=3,
            )
            return None

    def log_params(self, params: dict[str, str]) -> None:
        self._each(lambda b: b.log_params(params))

    def log_epoch(self, entry: dict) -> None:
        """One epoch of metrics.json's ``history``: every numeric value, at step ``epoch``."""
        step = int(entry["epoch"])
        metrics = {k: float(v) for k, v in entry.items() if k != "epoch" and is_number(v)}
        self.last_step = max(self.last_step, step)
        self._each(lambda b: b.log_metrics(metrics, step))

    def finish(self, records: list[Path], artifacts: list[Path]) -> None:
        """At the end: the pruning records (JSON files) as metrics at the last epoch's step, and
        ``artifacts`` (those that exist: config, metrics.json, figures) as files."""
        if not self.backends:
            return
        found = [read_json(p) for p in records]
        self._each(lambda b: b.log_records(found, self.last_step))
        for path in artifacts:
            if Path(path).is_file():
                self._each(lambda b, p=Path(path): b.log_artifact(p))

    def close(self, failed: bool = False) -> None:
        self._each(lambda b: b.close(failed))
        self.backends = []

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)
