"""Wall time of one 4-job sweep run serially (Hydra's basic launcher) and with 2 local workers
(hydra/launcher=joblib hydra.launcher.n_jobs=2), in the same invocation.

Jobs: plain training (method=sgd) of a 2x400 MLP on MNIST for a few epochs, seeds 0-3, one
thread per job (OMP_NUM_THREADS=1), so 2 workers use 2 cores. Each sweep trains into its own
empty run store. Prints both times, their ratio, the machine load before and after, and whether
both sweeps produced the same test errors; writes the same lines to
results/benchmarks_sweep.txt.

    python scripts/bench_sweep.py [--epochs 3] [--out results/benchmarks_sweep.txt]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bbbprune.machine import usable_cores
from bbbprune.storage import write_text

BIN = Path(sys.executable).parent / "bbbprune"


def sweep(runs: Path, epochs: int, launcher: list[str]) -> float:
    cmd = [
        str(BIN),
        "train",
        "-m",
        "method=sgd",
        "dataset=mnist",
        "model=mlp",
        "model.hidden=[400,400]",
        f"train.epochs={epochs}",
        "train.progress=false",
        "prune.fractions=[0.5]",
        "device=cpu",
        f"paths.runs={runs}",
        "seed=0,1,2,3",
        *launcher,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def test_errors(runs: Path) -> dict:
    return {
        json.loads(p.read_text())["seed"]: json.loads(p.read_text())["test"]["mean"]["error"]
        for p in runs.glob("*/metrics.json")
    }


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks_sweep.txt"))
    args = parser.parse_args()
    lines = [
        "# 4-job sweep: serial (basic launcher) vs hydra/launcher=joblib with 2 workers",
        f"date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"machine: {platform.machine()}, {usable_cores()} CPU cores, shared with other work",
        f"jobs: sgd, MNIST, MLP 2x400, {args.epochs} epochs, seeds 0-3, OMP_NUM_THREADS=1 per job",
        f"load average (1/5/15 min) before: {load()}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        serial_runs, joblib_runs = Path(tmp) / "serial", Path(tmp) / "joblib"
        serial = sweep(serial_runs, args.epochs, [])
        parallel = sweep(
            joblib_runs, args.epochs, ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
        )
        same = test_errors(serial_runs) == test_errors(joblib_runs)
        n = len(test_errors(joblib_runs))
    lines += [
        f"load average (1/5/15 min) after: {load()}",
        f"serial wall time: {serial:.1f} s",
        f"joblib (2 workers) wall time: {parallel:.1f} s",
        f"ratio serial / joblib: {serial / parallel:.2f}x",
        f"finished runs per sweep: {n}; identical test errors in both sweeps: {same}",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    write_text(args.out, text)


if __name__ == "__main__":
    main()
