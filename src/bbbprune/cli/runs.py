"""``bbbprune runs``: the run directories and their state, read from what each directory holds.

A run directory holds ``config.yaml`` (written when training starts), ``checkpoint.pt`` (after
each epoch), ``metrics.json`` (``finished`` once training and evaluation are done),
``failed.json`` (the last job failed), ``.lock`` (a process is training it) and ``train.log``
(one line per epoch). Reading them needs neither torch nor the checkpoint.
"""

from __future__ import annotations

import difflib
import json
import os
import socket
from pathlib import Path

from ..errors import UserError
from ..run.lock import LOCK_FILE

FIELDS = ("experiment", "method", "dataset", "model", "scale", "seed", "state")
STATES = ("finished", "running", "failed", "interrupted")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_state(run_dir: Path) -> str | None:
    """``running`` when a live process holds the run's training lock (run/lock.py), ``interrupted``
    when the lock file names a process that is gone, None when there is no lock file. A lock taken
    on another host counts as running."""
    path = run_dir / LOCK_FILE
    try:
        text = path.read_text()
    except OSError:
        return None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if "pid" not in fields or fields.get("host") != socket.gethostname():
        return "running"
    return "running" if _pid_alive(int(fields["pid"])) else "interrupted"


def _model_label(model: dict) -> str:
    if model.get("name") == "mlp":
        return "mlp-" + "-".join(str(h) for h in model.get("hidden", []))
    if "widths" in model:
        return f"{model['name']}-" + "-".join(str(w) for w in model["widths"])
    if "conv" in model:
        return f"{model['name']}-" + "-".join(str(c) for c in model["conv"]) + f"-{model['fc']}"
    return str(model.get("name", "?"))


def describe_run(run_dir: Path) -> dict | None:
    """The facts ``bbbprune runs`` shows for one directory; None if it is not a run."""
    from omegaconf import OmegaConf

    if not (run_dir / "config.yaml").is_file():
        return None
    try:
        cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=False)
    except Exception:
        return None
    metrics = _read_json(run_dir / "metrics.json") or {}
    if metrics.get("history") is not None:
        done = len(metrics["history"])
    elif (run_dir / "train.log").is_file():
        done = sum(
            1
            for line in (run_dir / "train.log").read_text().splitlines()
            if line.startswith("epoch")
        )
    else:
        done = 0 if not (run_dir / "checkpoint.pt").exists() else None
    state = lock_state(run_dir)
    if state is None:
        if (run_dir / "failed.json").exists():
            state = "failed"
        elif metrics.get("finished"):
            state = "finished"
        else:
            state = "interrupted"
    table = cfg.get("table") or {}
    return {
        "run": run_dir.name,
        "experiment": table.get("name", "-") if isinstance(table, dict) else "-",
        "method": (cfg.get("method") or {}).get("name", "?"),
        "dataset": (cfg.get("dataset") or {}).get("name", "?"),
        "model": _model_label(cfg.get("model") or {}),
        "scale": (cfg.get("scale") or {}).get("name", "?"),
        "seed": cfg.get("seed", "?"),
        "epochs": f"{'?' if done is None else done}/{(cfg.get('train') or {}).get('epochs', '?')}",
        "state": state,
    }


def parse_filters(args: list[str]) -> tuple[dict[str, str], Path]:
    """``key=value`` filters and the runs folder (``paths.runs=``, else $BBBPRUNE_RUNS or runs)."""
    filters, root = {}, Path(os.environ.get("BBBPRUNE_RUNS") or "runs")
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "paths.runs":
            root = Path(value)
        elif key in FIELDS:
            if key == "state" and value not in STATES:
                raise UserError(f"unknown state {value!r}; choose from: {', '.join(STATES)}")
            filters[key] = value
        else:
            close = difflib.get_close_matches(key, (*FIELDS, "paths.runs"), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UserError(
                f"unknown filter {key!r}{hint} (filters: {', '.join(FIELDS)}, paths.runs)"
            )
    return filters, root


def list_runs(args: list[str]) -> str:
    """The text of ``bbbprune runs [key=value ...]``: one row per run, oldest first."""
    filters, root = parse_filters(args)
    if not root.is_dir():
        return f"no runs: {root} does not exist"
    rows = []
    for run_dir in sorted(root.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)):
        info = describe_run(run_dir) if run_dir.is_dir() else None
        if info and all(str(info[k]) == v for k, v in filters.items()):
            rows.append(info)
    if not rows:
        return f"no runs under {root}" + (" match the filters" if filters else "")
    columns = ("run", *FIELDS[:-1], "epochs", "state")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    lines.append(
        f"{len(rows)} runs under {root}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    )
    return "\n".join(lines)
