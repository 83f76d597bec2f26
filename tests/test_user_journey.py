"""A user's path through one run: per-epoch log lines (train.log and stderr), evaluation progress
and its time, the run's name and state, seeded re-evaluation, `prune -m` in one process, and a
config.yaml that contradicts its checkpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import smoke_overrides

BIN = Path(sys.executable).parent / "bbbprune"


def run(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


EPOCH_LINE = re.compile(
    r"^epoch (\d+)/2  loss [\d.]+ \(nll [\d.]+, kl [\d.]+\)  train acc [\d.]+  "
    r"val acc [\d.]+  [\d.]+ s$"
)


def test_one_run_from_training_to_re_evaluation(tmp_path, data_root):
    common = smoke_overrides(tmp_path, data_root)
    out = run("train", "method=bbb", "train.epochs=2", *common, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("bbb-mnist-mlp-32-16-smoke-s0-")

    # one line per epoch in train.log, and the same lines on stderr (not a terminal here)
    log = (run_dir / "train.log").read_text().splitlines()
    assert [EPOCH_LINE.match(line).group(1) for line in log] == ["1", "2"], log
    assert all(line in out.stderr for line in log)
    # the evaluation shows progress: 3 criteria x 3 smoke fractions
    assert "evaluated 9/9: random at 90.00%" in out.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # snr (BBB's own criterion): mean and sampled records; |mu| and random: the mean only
    assert metrics["evaluation_time_s"] > 0 and metrics["evaluation_records"] == 3 * 2 + 3 + 3
    records = {p.name for p in (run_dir / "records").iterdir()}
    assert "snr_0.9000_global_sampled.json" in records
    assert "magnitude_0.9000_global_mean.json" in records
    assert "magnitude_0.9000_global_sampled.json" not in records
    record = json.loads((run_dir / "records" / "snr_0.5000_global_sampled.json").read_text())
    assert record["eval_images"] == 100  # the tiny test set (below smoke's eval_subset)

    listed = run("runs", f"paths.runs={tmp_path / 'runs'}").stdout.splitlines()
    assert listed[1].split()[-2:] == ["2/2", "finished"]

    # re-evaluating a record draws the same weight samples: the same numbers
    again = run("prune", f"run={run_dir}", "prune.criterion=snr", "prune.fraction=0.5", *common)
    assert again.returncode == 0, again.stderr[-2000:]
    new = json.loads((run_dir / "records" / "snr_0.5000_global_sampled.json").read_text())
    for field in ("error", "nll", "ece", "eval_seed"):
        assert new[field] == record[field], field

    # a sweep over fractions is one process: no per-job launch, every record written
    out = run(
        "prune",
        "-m",
        f"run={run_dir}",
        "prune.criterion=magnitude",
        "prune.fraction=0.2,0.4,0.6",
        *common,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Launching" not in out.stdout + out.stderr
    assert out.stdout.count("magnitude") == 3  # 3 fractions, mean weights (not BBB's own criterion)
    for frac in ("0.2000", "0.4000", "0.6000"):
        assert (run_dir / "records" / f"magnitude_{frac}_global_mean.json").exists()

    # a config.yaml that contradicts the checkpoint is refused in one line
    cfg = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(cfg.replace("- 32\n", "- 200\n", 1))
    out = run("prune", f"run={run_dir}", "prune.criterion=snr", "prune.fraction=0.5", *common)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "says model=mlp-200-16 but checkpoint.pt holds model=mlp-32-16" in out.stderr


def test_epoch_line_names_the_loss_terms():
    from bbbprune.run.epoch_log import format_epoch

    entry = {
        "epoch": 3,
        "train_loss": 0.5,
        "train_accuracy": 0.9,
        "val_accuracy": 0.8,
        "wall_time_s": 1.25,
        "train_nll": 0.375,
        "train_kl": 0.125,
    }
    assert format_epoch(entry, 10) == (
        "epoch 3/10  loss 0.5000 (nll 0.3750, kl 0.1250)  train acc 0.9000  val acc 0.8000  1.2 s"
    )


def test_record_seeds_differ_between_records_and_repeat_for_the_same_record():
    from bbbprune.evaluation.records import record_seed

    a = record_seed("run", "snr", 0.5, "global", "sampled")
    assert a == record_seed("run", "snr", 0.5, "global", "sampled")
    others = {
        record_seed("run", "snr", 0.9, "global", "sampled"),
        record_seed("run", "magnitude", 0.5, "global", "sampled"),
        record_seed("other", "snr", 0.5, "global", "sampled"),
    }
    assert a not in others and len(others) == 3
