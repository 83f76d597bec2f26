"""Experiment tracking (bbbprune.tracking, conf/logger/): a real BBB run written to CSV,
TensorBoard and MLflow and read back with each tool's own reader must equal its metrics.json;
a sweep is one tracked run per job; a failing logger never stops training."""

from __future__ import annotations

import csv
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import smoke_overrides

from bbbprune.errors import UserError
from bbbprune.run.loop import train
from bbbprune.storage import read_json
from bbbprune.tracking import BACKENDS, Backend, TrackingWarning

mlflow_tracking = pytest.importorskip("mlflow.tracking")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
tensor_util = pytest.importorskip("tensorboard.util.tensor_util")

PER_EPOCH = ("train_nll", "train_kl", "train_loss", "train_accuracy", "val_error", "lr")


def mlflow_client(tmp_path: Path):
    """The client of the default store: mlruns/ beside the runs folder (tmp_path/runs)."""
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return mlflow_tracking.MlflowClient((tmp_path / "mlruns").as_uri())


def tracked_runs(client) -> list:
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps]) if exps else []


@pytest.mark.slow  # about 25 s on a busy 2-core machine, half of it importing mlflow/tensorboard
def test_bbb_run_in_csv_tensorboard_and_mlflow_equals_metrics_json(smoke_cfg, tmp_path):
    cfg = smoke_cfg(
        "method=bbb",
        "train.epochs=2",
        "prune.criteria=[snr]",
        "prune.fractions=[0.5]",
        "logger=[csv,tensorboard,mlflow]",
    )
    run_dir = train(cfg, log=lambda *_: None)
    history = read_json(run_dir / "metrics.json")["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:  # the loss is the data term plus the KL/N term, step by step
        assert h["train_nll"] + h["train_kl"] == pytest.approx(h["train_loss"], rel=1e-5)
        assert h["train_kl"] > 0 and h["val_error"] == pytest.approx(100 * (1 - h["val_accuracy"]))

    # CSV: one row per epoch
    with open(run_dir / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row, h in zip(rows, history, strict=True):
        for key in PER_EPOCH:
            assert float(row[key]) == h[key], key

    # TensorBoard: the event files, read with TensorBoard's own reader
    acc = event_accumulator.EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance={event_accumulator.TENSORS: 0}
    ).Reload()
    for key in PER_EPOCH:
        got = {e.step: tensor_util.make_ndarray(e.tensor_proto).item() for e in acc.Tensors(key)}
        assert got == {h["epoch"]: h[key] for h in history}, key

    # MLflow: the local file store beside runs/, read with MlflowClient
    client = mlflow_client(tmp_path)
    (run,) = tracked_runs(client)
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    for key in PER_EPOCH:
        got = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
        assert got == {h["epoch"]: h[key] for h in history}, key
    assert run.data.params["method.prior.pi"] == "0.5"
    assert run.data.params["train.epochs"] == "2"
    # every pruning record as metrics, criterion and fraction in the key
    rec = read_json(run_dir / "records" / "snr_0.5000_global_sampled.json")
    assert run.data.metrics["prune/snr_0.5000_global/sampled/error"] == rec["error"]
    assert run.data.metrics["prune/snr_0.5000_global/mean/achieved_sparsity"] == pytest.approx(
        0.5, abs=1e-3
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "config.yaml"} <= artifacts
    with open(run_dir / "pruning.csv") as fh:
        pruning = list(csv.DictReader(fh))
    assert {(r["criterion"], r["prediction"]) for r in pruning} == {
        ("snr", "mean"),
        ("snr", "sampled"),
    }


class FullDisk(Backend):
    """A backend whose every write fails as on a full disk."""

    calls = 0

    def log_metrics(self, metrics, step):
        FullDisk.calls += 1
        raise OSError(28, "No space left on device")


def test_a_failing_logger_warns_once_and_training_goes_on(smoke_cfg, monkeypatch):
    monkeypatch.setitem(BACKENDS, "full_disk", lambda: FullDisk)
    cfg = smoke_cfg("train.epochs=2", "prune.fractions=[0.5]", "logger=csv", "+logger.full_disk={}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_dir = train(cfg, log=lambda *_: None)
    failed = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(failed) == 1 and "full_disk" in str(failed[0].message)
    assert "No space left on device" in str(failed[0].message)
    assert FullDisk.calls == 1  # dropped after its first failure
    assert read_json(run_dir / "metrics.json")["finished"]
    with open(run_dir / "metrics.csv") as fh:  # the other logger saw every epoch
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2]


def test_an_mlflow_server_that_is_down_warns_once(smoke_cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg = smoke_cfg("logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_dir = train(cfg, log=lambda *_: None)
    failed = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(failed) == 1 and "mlflow" in str(failed[0].message)
    assert read_json(run_dir / "metrics.json")["finished"]


def test_an_unknown_logger_is_a_user_error(smoke_cfg):
    with pytest.raises(UserError, match="unknown logger 'wandb'; valid: none, csv"):
        train(smoke_cfg("+logger.wandb={}"), log=lambda *_: None)


def bbbprune(monkeypatch, *argv: str) -> None:
    """The ``bbbprune`` command, in this process (Hydra's basic launcher runs jobs in turn)."""
    from bbbprune.cli import main

    monkeypatch.setattr(sys, "argv", ["bbbprune"])
    main(list(argv))


@pytest.mark.slow  # two trainings and a table through the command line (about 40 s)
def test_a_sweep_is_one_tracked_run_per_job_under_the_table_parent(
    tmp_path, data_root, monkeypatch
):
    common = smoke_overrides(tmp_path, data_root) + ["prune.fractions=[0.5]"]
    two = "hydra.sweeper.arms=[{method:'sgd,dropout'}]"  # two of the table's jobs
    bbbprune(
        monkeypatch,
        "train",
        "-m",
        "experiment=blundell_table1",
        two,
        "logger=[csv,mlflow]",
        *common,
    )
    client = mlflow_client(tmp_path)
    jobs = tracked_runs(client)
    assert sorted(r.data.tags["method"] for r in jobs) == ["dropout", "sgd"]
    assert {r.data.tags["experiment"] for r in jobs} == {"blundell_table1"}
    assert len({r.data.tags["sweep"] for r in jobs}) == 1
    assert sorted(r.data.tags["job"] for r in jobs) == ["0", "1"]
    assert client.get_experiment(jobs[0].info.experiment_id).name == "blundell_table1"

    bbbprune(monkeypatch, "table", "experiment=blundell_table1", two, "logger=mlflow", *common)
    runs = tracked_runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("role") == "table"]
    assert "blundell_table1.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_id for r in children) == sorted(r.info.run_id for r in jobs)
    assert json.loads(
        (tmp_path / "runs").joinpath(jobs[0].info.run_name, "metrics.json").read_text()
    )["finished"]


def test_sparse_vd_epoch_scalars_are_its_warm_up_weight_and_its_rule_share(smoke_cfg):
    """kl_weight follows rw = clip((epoch − 5)/(20 − 5), 0, 1); the share is the fraction of
    weights whose log α = log σ² − log θ² is at least 3, counted by hand."""
    from bbbprune.methods import build_method
    from bbbprune.nets.models import build_model

    method = build_method(smoke_cfg("method=svd").method)
    spec = {"name": "mlp", "hidden": [8], "input_shape": [1, 28, 28], "n_classes": 10}
    net = build_model({**spec, "dropout": 0.0}, method.layer_factory())
    layers = [m for m in net.modules() if hasattr(m, "log_sigma2")]
    with torch.no_grad():
        for layer in layers:
            layer.theta.fill_(0.1)  # log θ² = log 0.01
            layer.log_sigma2.fill_(-10.0)  # log α ≈ −5.4: kept
            layer.log_sigma2.view(-1)[::4] = 2.0  # log α ≈ 6.6: removed by the rule
    removed = sum(len(layer.log_sigma2.view(-1)[::4]) for layer in layers)
    total = sum(layer.log_sigma2.numel() for layer in layers)
    for epoch, rw in ((0, 0.0), (5, 0.0), (8, 0.2), (20, 1.0), (30, 1.0)):
        got = method.epoch_scalars(net, epoch)
        assert got["kl_weight"] == pytest.approx(rw)
        assert got["log_alpha_above_threshold"] == pytest.approx(removed / total)
