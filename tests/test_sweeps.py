"""Sweeps through Hydra's launchers (joblib, submitit_local): all jobs run, the table gathers
them, and one failing job neither stops the others nor goes unreported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import compose_config, smoke_overrides
from test_cli import run

from bbbprune.launchers import ResumingLocalLauncher, resume_overrides
from bbbprune.report import gather


def finished_runs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if (p / "metrics.json").exists())


def test_submitit_local_train_sweep_joblib_prune_sweep_and_table(tmp_path, data_root):
    common = smoke_overrides(tmp_path, data_root)
    common += ["hydra.sweeper.params.method=sgd,dropout"]  # two of the table's four jobs
    # submitit's local executor through our resume-on-requeue launcher (conf/hydra/launcher)
    out = run("train", "-m", "experiment=blundell_table1", "hydra/launcher=local_resuming", *common)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = finished_runs(tmp_path / "runs")
    assert sorted(p.name.split("-")[0] for p in runs) == ["dropout", "sgd"]
    # every job went through submitit: one submission folder per job under the sweep dir
    (sweep,) = (tmp_path / "runs" / "hydra").glob("multirun_*")
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2

    sgd = next(p for p in runs if p.name.startswith("sgd-"))
    out = run(
        "prune",
        "-m",
        f"run={sgd}",
        "prune.criterion=magnitude",
        "prune.fraction=0.3,0.6,0.8",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *common,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for frac in (0.3, 0.6, 0.8):
        rec = json.loads((sgd / "records" / f"magnitude_{frac:.4f}_global_mean.json").read_text())
        assert rec["achieved_sparsity"] == pytest.approx(frac, abs=1e-3)

    out = run("table", "experiment=blundell_table1", *common)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"\(2 runs, \d+ records, 0 missing\)", out.stdout), out.stdout
    table = (tmp_path / "results" / "blundell_table1.md").read_text()
    assert "## Missing" not in table


def test_failing_job_does_not_stop_the_sweep_and_the_table_names_it(tmp_path, data_root):
    """lr=1e30 diverges (NaN loss → TrainingDiverged); the lr=0.01 job still runs to the end.
    The sweep exits 1 with one line naming the failed job, and the failure is recorded."""
    common = smoke_overrides(tmp_path, data_root) + ["prune.fractions=[0.5]"]
    out = run(
        "train",
        "-m",
        "method.optimizer.lr=1e30,0.01",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *common,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "sweep job #0" in out.stderr and "TrainingDiverged" in out.stderr

    jobs = [compose_config(common + [f"method.optimizer.lr={lr}"]) for lr in ("1e30", "0.01")]
    _, runs, missing = gather(jobs)
    assert [r["run"] for r in runs] == [p.name for p in finished_runs(tmp_path / "runs")]
    assert len(runs) == 1 and len(missing) == 1
    assert "FAILED: TrainingDiverged: training diverged at epoch 1" in missing[0]

    # run alone, the same job fails with one line and status 2, and its record stays
    out = run("train", "method.optimizer.lr=1e30", *common)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "training diverged" in out.stderr


def test_requeued_job_resumes_its_run():
    """submitit requeues what the launcher's checkpoint hook returns: the same job, now with
    train.resume=true (any other train.resume replaced)."""
    assert resume_overrides(["seed=1", "train.resume=false"]) == ["seed=1", "train.resume=true"]
    launcher = ResumingLocalLauncher(timeout_min=1)
    delayed = launcher.checkpoint(["method=bbb"], "hydra.sweep.dir", 3, "job-id", {})
    assert delayed.function is launcher
    assert delayed.args == (["method=bbb", "train.resume=true"], "hydra.sweep.dir", 3, "job-id", {})
