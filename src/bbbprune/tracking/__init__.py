"""Experiment tracking: the ``logger`` config group (conf/logger/) sends a run's parameters,
per-epoch metrics, pruning records and files to CSV, TensorBoard and/or MLflow.

    bbbprune train logger=[csv,tensorboard,mlflow] ...

One backend per file (csv_logger, tensorboard_logger, mlflow_logger), registered in
``BACKENDS`` by the name of its config file; ``Tracker`` (fanout.py) passes every call to each
of them and keeps training going when one fails. The JSON records stay the source of truth;
everything logged here is a copy of them. This package imports only bbbprune.storage and
bbbprune.errors from bbbprune (docs/tracking.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError
from .base import Backend, RunInfo, flatten
from .fanout import Tracker, TrackingWarning

__all__ = [
    "BACKENDS",
    "Backend",
    "RunInfo",
    "Tracker",
    "TrackingWarning",
    "log_table",
    "logger_names",
    "open_tracker",
]


def _missing(package: str, name: str) -> UserError:
    return UserError(
        f"logger={name} needs the {package} package: pip install 'bbbprune[tracking]' "
        f"(or pip install {package})"
    )


def _csv() -> type[Backend]:
    from .csv_logger import CSVBackend

    return CSVBackend


def _tensorboard() -> type[Backend]:
    try:
        from .tensorboard_logger import TensorBoardBackend
    except ImportError as exc:
        raise _missing("tensorboard", "tensorboard") from exc
    return TensorBoardBackend


def _mlflow() -> type[Backend]:
    try:
        from .mlflow_logger import MLflowBackend
    except ImportError as exc:
        raise _missing("mlflow", "mlflow") from exc
    return MLflowBackend


# name (a file of conf/logger/) -> a loader returning the backend class (imports on demand, so
# that a run without tracking never imports tensorboard or mlflow)
BACKENDS: dict[str, Callable[[], type[Backend]]] = {
    "csv": _csv,
    "tensorboard": _tensorboard,
    "mlflow": _mlflow,
}


def logger_names(cfg: DictConfig) -> list[str]:
    """The loggers chosen (``logger=[csv,mlflow]`` composes ``logger: {csv: ..., mlflow: ...}``);
    an unknown one is a UserError naming the valid ones."""
    chosen = list((cfg.get("logger") or {}).keys())
    for name in chosen:
        if name not in BACKENDS:
            raise UserError(f"unknown logger {name!r}; valid: none, {', '.join(BACKENDS)}")
    return chosen


def experiment_name(cfg: DictConfig) -> str | None:
    """The experiment a run belongs to: its table's name (experiment=<file>), if any."""
    table = cfg.get("table")
    return str(table.name) if table and table.get("name") else None


def _sweep_tags() -> dict[str, str]:
    """In a multirun: the sweep (its directory's name) and the job's number in it."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return {}
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return {}
        return {"sweep": Path(str(hc.sweep.dir)).name, "job": str(hc.job.num)}
    except Exception:  # no Hydra context to read: not a sweep
        return {}


def run_info(cfg: DictConfig, run_dir: Path) -> RunInfo:
    experiment = experiment_name(cfg)
    tags = {
        "run": run_dir.name,
        "method": str(cfg.method.name),
        "dataset": str(cfg.dataset.name),
        "seed": str(cfg.seed),
        **({"experiment": experiment} if experiment else {}),
        **_sweep_tags(),
    }
    return RunInfo(Path(run_dir), run_dir.name, experiment, tags)


def open_tracker(cfg: DictConfig, run_dir: Path, enabled: bool = True) -> Tracker:
    """A Tracker over the backends ``cfg.logger`` names (none: a Tracker that does nothing),
    with the flattened composed config logged as parameters. A missing package or an unknown
    logger is a UserError now; a backend that fails to open is warned about and left out."""
    names = logger_names(cfg)
    if not enabled or not names:
        return Tracker()
    classes = {name: BACKENDS[name]() for name in names}
    run = run_info(cfg, run_dir)
    tracker = Tracker(run)
    for name, cls in classes.items():
        settings = OmegaConf.to_container(cfg.logger[name], resolve=True) or {}
        settings["runs_root"] = str(cfg.paths.runs)
        backend = tracker.guard(name, lambda c=cls, s=settings: c(s, run))
        if backend is not None:
            backend.name = name
            tracker.backends.append(backend)
    tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
    return tracker


def log_table(cfg: DictConfig, table: Path, files: list[Path]) -> str | None:
    """``bbbprune table`` with logger=mlflow: the table file and ``files`` (its records, its
    figures) as artifacts of the experiment's parent run, whose children become the
    experiment's tracked runs. Returns the parent run's id (None without mlflow, or when MLflow
    failed: a warning then, the table is written all the same)."""
    if "mlflow" not in logger_names(cfg):
        return None
    _mlflow()
    from .mlflow_logger import log_parent_run

    settings = OmegaConf.to_container(cfg.logger.mlflow, resolve=True) or {}
    settings["runs_root"] = str(cfg.paths.runs)
    name = experiment_name(cfg) or "bbbprune"
    return Tracker().guard("mlflow", lambda: log_parent_run(settings, name, [table, *files]))
