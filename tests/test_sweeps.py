"""Sweeps through Hydra's launchers (joblib, submitit_local): all jobs run, the table gathers
them, and one failing job neither stops the others nor goes unreported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import compose_config, smoke_overrides
from test_cli import run

from bbbprune.report.gather import gather
from bbbprune.run.launchers import resume_if_requeued


def finished_runs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if (p / "metrics.json").exists())


@pytest.mark.slow  # end to end through the command line (about 20 s): make test-all
def test_submitit_local_train_sweep_joblib_prune_sweep_and_table(tmp_path, data_root):
    common = smoke_overrides(tmp_path, data_root)
    two = ["hydra.sweeper.arms=[{method:'sgd,dropout'}]"]  # two of the table's jobs
    # submitit's local executor: the submission path of hydra/launcher=slurm, as local processes
    out = run(
        "train", "-m", "experiment=blundell_table1", "hydra/launcher=submitit_local", *two, *common
    )
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

    out = run("table", "experiment=blundell_table1", *two, *common)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"\(2 runs, \d+ records, 0 missing\)", out.stdout), out.stdout
    table = (tmp_path / "results" / "smoke" / "blundell_table1.md").read_text()
    assert "## Missing" not in table


@pytest.mark.slow  # end to end through the command line (about 20 s): make test-all
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


def test_requeued_slurm_job_resumes_its_run(smoke_cfg, monkeypatch):
    """SLURM sets SLURM_RESTART_COUNT in a requeued job: that job resumes; a first run doesn't."""
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert resume_if_requeued(smoke_cfg(), log=print).train.resume is False
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    said = []
    assert resume_if_requeued(smoke_cfg(), log=said.append).train.resume is True
    assert said == ["requeued job (SLURM restart 2): resuming"]


def test_slurm_preset_composes_with_partition_gpus_time_limit_and_requeue():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="bbbprune.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=long"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "long" and launcher.gpus_per_node == 1
    assert launcher.timeout_min == 720 and launcher.max_num_timeout == 20
    assert launcher.additional_parameters == {"requeue": True}
