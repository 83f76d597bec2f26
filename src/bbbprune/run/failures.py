"""Failed jobs of a sweep: recorded beside the run, listed by ``bbbprune table``.

In a multirun (``-m``) one job that fails (a ``TrainingDiverged``, a bad option, a bug) must not
stop the others. The CLI writes ``failed.json`` (atomically) into the failing job's run
directory and raises :class:`JobFailed`; Hydra marks that job FAILED, runs the rest of the
sweep, then reports the first failure as one line and exits with status 1. A later success of
the same run removes ``failed.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hydra.errors import CompactHydraException

from ..storage import write_json

FAILED = "failed.json"


class JobFailed(CompactHydraException):
    """One job of a sweep failed; Hydra prints the message (one line) once the sweep ends."""


def failure_reason(exc: BaseException) -> str:
    """``TrainingDiverged: training diverged at epoch 3 (loss nan)...``: class and message."""
    return f"{type(exc).__name__}: {exc}"


def record_failure(run_dir: Path, exc: BaseException, overrides: list[str]) -> Path:
    path = Path(run_dir) / FAILED
    write_json(
        path,
        {
            "reason": failure_reason(exc),
            "overrides": list(overrides),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return path


def clear_failure(run_dir: Path) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


def failure_of(run_dir: Path) -> str | None:
    """The recorded reason the run's last job failed, or None."""
    try:
        return json.loads((Path(run_dir) / FAILED).read_text())["reason"]
    except (OSError, ValueError, KeyError):
        return None


def describe_missing(run_dir: Path) -> str:
    """``name`` for a run not finished yet; ``name — FAILED: reason`` for one that failed."""
    reason = failure_of(run_dir)
    return run_dir.name if reason is None else f"{run_dir.name} — FAILED: {reason}"
