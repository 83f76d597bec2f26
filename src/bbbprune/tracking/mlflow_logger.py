"""logger=mlflow: one MLflow run per training run, in the MLflow experiment named after the
bbbprune experiment (``table.name``), tagged with the experiment, the sweep and the job.

Default store: the local file store ``mlruns/`` beside the runs folder (``paths.runs``), browsed
with ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri mlruns`` (MLflow 3 keeps the
file store in maintenance mode and asks for that variable); ``logger.mlflow.tracking_uri`` points
at a server instead. Parameters and metrics go through ``MlflowClient.log_batch`` (at most 100
parameters / 1000 metrics per call)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from .base import Backend, RunInfo, metric_key

PARAM_VALUE_LIMIT = 6000  # characters MLflow keeps of a parameter's value
PARAM_BATCH, METRIC_BATCH = 100, 1000
PARENT_ROLE = "table"  # tag ``role`` of the run ``bbbprune table`` creates


def tracking_uri(settings: dict) -> str:
    """The configured URI, or the file store ``mlruns/`` beside the runs folder."""
    if settings.get("tracking_uri"):
        return str(settings["tracking_uri"])
    runs = Path(settings.get("runs_root") or "runs").resolve()
    return (runs.parent / "mlruns").as_uri()


def client(settings: dict) -> MlflowClient:
    uri = tracking_uri(settings)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # a server that is down should cost seconds, not MLflow's minutes of retries
    os.environ.setdefault(
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.get("request_retries", 2))
    )
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.get("request_timeout_s", 10)))
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing (parallel jobs may race to create it)."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(name)
    except Exception:  # another job created it first
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _now_ms() -> int:
    return int(time.time() * 1000)


class MLflowBackend(Backend):
    name = "mlflow"

    def __init__(self, settings: dict, run: RunInfo):
        super().__init__(settings, run)
        self.client = client(settings)
        name = settings.get("experiment_name") or run.experiment or "bbbprune"
        self.experiment_id = experiment_id(self.client, name)
        made = self.client.create_run(self.experiment_id, run_name=run.name, tags=run.tags)
        self.run_id = made.info.run_id

    def log_params(self, params: dict[str, str]) -> None:
        items = [Param(metric_key(k), str(v)[:PARAM_VALUE_LIMIT]) for k, v in params.items()]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = _now_ms()
        items = [Metric(metric_key(k), float(v), now, int(step)) for k, v in metrics.items()]
        for i in range(0, len(items), METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + METRIC_BATCH])

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def log_parent_run(settings: dict, experiment: str, files: list[Path]) -> str:
    """The parent run of ``experiment`` (made once, then reused; tag role=table): ``files`` as
    its artifacts, and every tracked run of the experiment becomes its child."""
    mlflow = client(settings)
    exp = experiment_id(mlflow, settings.get("experiment_name") or experiment)
    found = mlflow.search_runs([exp], f"tags.role = '{PARENT_ROLE}'", max_results=1)
    if found:
        parent = found[0].info.run_id
        mlflow.update_run(parent, status="RUNNING")
    else:
        tags = {"role": PARENT_ROLE, "experiment": experiment}
        parent = mlflow.create_run(exp, run_name=f"{experiment} (table)", tags=tags).info.run_id
    for path in files:
        if Path(path).is_file():
            mlflow.log_artifact(parent, str(path))
    children = mlflow.search_runs([exp], f"tags.experiment = '{experiment}'", max_results=50000)
    for run in children:
        if run.info.run_id != parent and run.data.tags.get("role") != PARENT_ROLE:
            mlflow.log_batch(run.info.run_id, tags=[RunTag("mlflow.parentRunId", parent)])
    mlflow.set_terminated(parent, "FINISHED")
    return parent
