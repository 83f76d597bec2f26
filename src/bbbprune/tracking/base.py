"""What every tracking backend implements, and the conversions shared by all of them: the
composed config flattened to parameters, and pruning records flattened to metrics."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# record fields that identify a record (they are in its key) or do not vary between records
RECORD_IDENTITY = (
    "run",
    "method",
    "dataset",
    "model",
    "seed",
    "scale",
    "epochs",
    "criterion",
    "fraction",
    "scope",
    "finetune_epochs",
    "prediction",
    "samples",
    "prunable",
    "commit",
    "date",
)
PARAMS_LEFT_OUT = ("table",)  # the report's table layout, not a setting of the run
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-./ ]")


@dataclass(frozen=True)
class RunInfo:
    """The tracked run: its directory, its name (the run directory's name) and its tags."""

    dir: Path
    name: str
    experiment: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Backend:
    """One tracking destination. The Tracker (fanout.py) calls these in this order: once
    ``log_params``, per epoch ``log_metrics``, at the end ``log_records`` and ``log_artifact``,
    then ``close``. A backend may raise; the Tracker then warns once and stops calling it."""

    name = "backend"

    def __init__(self, settings: dict, run: RunInfo):
        self.settings, self.run = settings, run

    def log_params(self, params: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_records(self, records: list[dict], step: int) -> None:
        """The pruning records, by default as metrics named by ``record_metrics``."""
        self.log_metrics(record_metrics(records), step)

    def log_artifact(self, path: Path) -> None:
        pass

    def close(self, failed: bool = False) -> None:
        pass


def flatten(tree, prefix: str = "") -> dict[str, str]:
    """A nested dict as ``{"a.b.c": "value"}``; lists stay whole, as JSON."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if not prefix and key in PARAMS_LEFT_OUT:
            continue
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def metric_key(name: str) -> str:
    """``name`` with characters MLflow refuses in keys replaced by ``_``."""
    return _KEY_CHARS.sub("_", name)


def record_key(record: dict) -> str:
    """``prune/<criterion>_<fraction>_<scope>[_ft<n>]/<prediction>``: the criterion and fraction
    of a record as in its file name (``native``: the method's own rule, no fraction)."""
    level = record["criterion"]
    if level != "native":
        level += f"_{float(record['fraction']):.4f}"
    level += f"_{record['scope']}"
    if record.get("finetune_epochs"):
        level += f"_ft{record['finetune_epochs']}"
    return f"prune/{level}/{record['prediction']}"


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def record_metrics(records: list[dict]) -> dict[str, float]:
    """Every numeric field of every record (error, nll, ece, val_error, achieved_sparsity, ...)
    as ``<record_key>/<field>``."""
    out = {}
    for rec in records:
        base = record_key(rec)
        for name, value in rec.items():
            if name not in RECORD_IDENTITY and is_number(value):
                out[metric_key(f"{base}/{name}")] = float(value)
    return out
