"""`make reproduce-tables` runs JOBS experiments at once, each job on one thread: the tables are
the same numbers whether one experiment trains at a time or two do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import smoke_overrides

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ["vidlicka", "molchanov_lenet"]
VARYING = {"date", "commit", "epoch_seconds", "wall_s", "train_time_s", "evaluation_time_s"}


def _run_lanes(jobs: int, tmp_path: Path, data_root: Path) -> dict:
    out = tmp_path / f"jobs{jobs}"
    overrides = [o for o in smoke_overrides(out, data_root) if not o.startswith("paths.")]
    env = {
        **os.environ,
        "BBBPRUNE_DATA": str(data_root),
        "BBBPRUNE_RUNS": str(out / "runs"),
        "BBBPRUNE_RESULTS": str(out / "results"),
    }
    targets = [f"experiment-{e}" for e in EXPERIMENTS]
    (out / "runs" / "reproduce-smoke").mkdir(parents=True)
    done = subprocess.run(
        [
            "make",
            "-s",
            f"-j{jobs}",
            *targets,
            "SCALE=smoke",
            f"EXPERIMENTS={' '.join(EXPERIMENTS)}",
            f"OVERRIDES={' '.join(overrides)}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    times = (out / "runs" / "reproduce-smoke" / "times.tsv").read_text().split()
    assert sorted(times[::2]) == sorted(EXPERIMENTS)  # one wall time per experiment
    return {
        e: json.loads((out / "results" / "smoke" / f"{e}.records.json").read_text())
        for e in EXPERIMENTS
    }


def _numbers(records: list[dict]) -> list[dict]:
    def keep(k):
        timed = k.startswith(("latency_", "speedup_b")) or k.endswith(("_s", "_ms", "_seconds"))
        return k not in VARYING and not timed  # measured times differ from run to run

    return sorted(
        ({k: v for k, v in r.items() if keep(k)} for r in records),
        key=lambda r: json.dumps(r, sort_keys=True, default=str),
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_two_lanes_give_the_numbers_of_one(tmp_path, data_root):
    one = _run_lanes(1, tmp_path, data_root)
    two = _run_lanes(2, tmp_path, data_root)
    for e in EXPERIMENTS:
        assert len(one[e]) > 0
        assert _numbers(one[e]) == _numbers(two[e]), e
