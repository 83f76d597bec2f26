"""Run the benchmarks in order and write their output to results/benchmarks.txt (``make benchmark``).

A header (date in UTC, the commit as the tables name it, ``bbbprune.storage.git_commit``; CPU model
with its clock and vector width, cores, torch version and threads, load average) is followed by the
output of each script, as printed, under the command that produced it: trainer overhead, BBB step
cost (with the peers BLiTZ and bayesian-torch when installed), LeNet-5-Caffe epoch, and the export
benchmark when blundell_table1's BBB run exists (otherwise a line says it was skipped). The output
is also shown as it comes. The file is written only when every script succeeded, through a
temporary file and a rename (bbbprune.storage.write_text), so an interrupted or failed run leaves
the previous file whole.

    .venv/bin/python scripts/benchmarks.py [--out results/benchmarks.txt] [--tiny]

``--tiny`` runs every script at a size of seconds (to check the assembly, not to measure).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bbbprune.machine import cpu_model, usable_cores
from bbbprune.storage import git_commit, write_text

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
# the export benchmark prunes blundell_table1's BBB run (seed 0) with the prior blundell_prior_grid
# chooses on validation (pi = 3/4, sigma1 = e^-2, sigma2 = e^-7) at 98 %, found by its metrics
EXPORT_RUNS = "runs/bbb-mnist-mlp-400-400-small-s0-*"
EXPORT_PRIOR = {"prior_pi": 0.75, "prior_neg_log_sigma1": 2.0, "prior_neg_log_sigma2": 7.0}
# sizes of the measurement (the LeNet-5 epoch on 10,000 images: 4 loops x 4 epochs stay minutes)
# the BBB step: 15 rounds, because between separate runs of 5 rounds the median ratio moved by
# more than its distance to the target (1.42-1.62)
SIZES = {
    "bench_lenet5_epoch.py": ["--images", "10000", "--rounds", "3"],
    "bench_bbb_step.py": ["--rounds", "15"],
}
TINY = {
    "bench_trainer_overhead.py": ["--rounds", "1", "--examples", "256"],
    "bench_bbb_step.py": ["--steps", "2", "--rounds", "1"],
    "bench_lenet5_epoch.py": ["--images", "100", "--rounds", "1", "--matmul-repeats", "1"],
    "bench_export.py": ["--repeats", "4"],
}


def load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def header(tiny: bool) -> list[str]:
    lines = [
        "# make benchmark output (written by scripts/benchmarks.py)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- commit: {git_commit()}",  # the same commit string as the tables' headers
        f"- machine: {cpu_model()}, {usable_cores()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, "
        f"{'CUDA available' if torch.cuda.is_available() else 'no GPU'}",
        f"- load average before: {load()}",
    ]
    if tiny:
        lines.append("- --tiny: every benchmark at a size of seconds; these are not measurements")
    return lines + [""]


def run_script(name: str, args: list[str], env: dict | None = None) -> list[str]:
    """Run scripts/<name> with this interpreter, echo its stdout line by line and return it
    under a ``$ python scripts/<name> ...`` line; a failure ends the program (exit 1)."""
    shown = " ".join([f"python scripts/{name}", *args])
    if env:
        shown = " ".join([*(f"{k}={v}" for k, v in env.items()), shown])
    print(f"$ {shown}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    out = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        out.append(line.rstrip("\n"))
    if proc.wait() != 0:
        sys.exit(f"scripts/{name} failed (exit {proc.returncode}); benchmarks file not written")
    return [f"$ {shown}", *out, ""]


def has_export_prior(run: Path) -> bool:
    """Whether a finished run's metrics name EXPORT_PRIOR (and it used the scale mixture)."""
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    if metrics.get("prior_kind") != "scale_mixture" or not metrics.get("finished"):
        return False
    return all(metrics.get(k) == v for k, v in EXPORT_PRIOR.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks.txt")
    parser.add_argument("--tiny", action="store_true", help="sizes of seconds (a check only)")
    args = parser.parse_args()

    def extra(name: str) -> list[str]:
        return TINY[name] if args.tiny else SIZES.get(name, [])

    lines = header(args.tiny)
    print("\n".join(lines), flush=True)
    for name in ("bench_trainer_overhead.py", "bench_bbb_step.py", "bench_lenet5_epoch.py"):
        lines += run_script(name, extra(name))
    export_run = next(
        (run for run in sorted(ROOT.glob(EXPORT_RUNS)) if has_export_prior(run)), None
    )
    if export_run is not None:
        with tempfile.TemporaryDirectory() as tmp:
            # --tiny leaves results/benchmarks_export.txt alone
            out = ["--out", str(Path(tmp) / "export.txt")] if args.tiny else []
            entry = [
                f"{export_run.relative_to(ROOT)}:snr:0.98"
            ]  # relative: no machine path in the output
            lines += run_script(
                "bench_export.py",
                entry + extra("bench_export.py") + out,
                {"OMP_NUM_THREADS": "1"},
            )
    else:
        skipped = (
            f"(export benchmark skipped: no blundell_table1 BBB run with {EXPORT_PRIOR} matches "
            f"{EXPORT_RUNS}; make reproduce-tables trains it)"
        )
        print(skipped)
        lines += ["$ python scripts/bench_export.py", skipped, ""]
    lines.append(f"- load average after: {load()}")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
