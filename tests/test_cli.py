"""The installed ``bbbprune`` console script: commands, sweeps, tables, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import smoke_overrides

from bbbprune.machine import machine_description

BIN = Path(sys.executable).parent / "bbbprune"


def run(*args, env_extra=None, cwd=None):
    env = {**os.environ, **(env_extra or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_console_script_is_installed():
    assert BIN.exists(), "pip install -e . should install the bbbprune console script"
    out = run("--help")
    assert out.returncode == 0 and "train" in out.stdout and "prune" in out.stdout


def test_unknown_command_is_one_line():
    out = run("fly")
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == "bbbprune: error: unknown command 'fly'; valid: train, prune, table, overview, data, export, runs"
    )


def test_unknown_method_lists_the_valid_choices():
    out = run("train", "method=nope")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "method" in out.stderr and "bbb" in out.stderr and "sgd" in out.stderr


def test_user_mistakes_are_one_line_without_traceback(tmp_path):
    out = run("prune", f"run={tmp_path}", "prune.fraction=1.5")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    out = run("prune", f"run={tmp_path}")
    assert out.returncode == 2 and "is not a run directory" in out.stderr
    out = run("train", "train.epochs=0")
    assert out.returncode == 2 and "train.epochs must be >= 1" in out.stderr


@pytest.mark.slow  # end to end through the command line (about 20 s): make test-all
def test_train_sweep_prune_sweep_and_table_end_to_end(tmp_path, data_root):
    common = smoke_overrides(tmp_path, data_root)
    out = run("train", "-m", "experiment=vidlicka", *common)
    assert out.returncode == 0, out.stderr[-2000:]
    bbb_runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.name.startswith("bbb-"))
    assert [name.split("-")[-2] for name in bbb_runs] == ["s0", "s1", "s2"]  # the headline seeds
    (run_dir,) = [tmp_path / "runs" / name for name in bbb_runs if "-s0-" in name]
    assert not (tmp_path / "runs" / "hydra").exists()  # no Hydra folder unless asked for

    out = run(
        "prune", "-m", f"run={run_dir}", "prune.criterion=snr", "prune.fraction=0.25,0.98", *common
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for frac in ("0.2500", "0.9800"):
        rec = json.loads((run_dir / "records" / f"snr_{frac}_global_mean.json").read_text())
        assert rec["achieved_sparsity"] == pytest.approx(float(frac), abs=1e-3)

    out = run("table", "experiment=vidlicka", *common)
    assert out.returncode == 0, out.stderr[-2000:]
    table = (tmp_path / "results" / "smoke" / "vidlicka.md").read_text()
    for needle in (
        "scale: **smoke**",
        "seeds: 0",
        "commit",
        f"machine of the runs: {machine_description()}; of the pruning records: "
        f"{machine_description()}",
        "date:",
        "| by \\|mu\\|/sigma |",
        "/ 2.35",
        "## Columns",
    ):
        assert needle in table, needle
    # the 25 % SNR cell holds our number beside the published one
    snr_row = next(line for line in table.splitlines() if line.startswith("| by \\|mu\\|/sigma |"))
    cells = re.split(r"(?<!\\)\|", snr_row)  # cell separators: unescaped pipes only
    assert "/ 2.15" in cells[2] and "– /" not in cells[2]


def test_table_lists_missing_runs(tmp_path, data_root):
    out = run("table", "experiment=blundell_table2", *smoke_overrides(tmp_path, data_root))
    assert out.returncode == 0, out.stderr[-2000:]
    table = (tmp_path / "results" / "smoke" / "blundell_table2.md").read_text()
    assert "## Missing" in table and "bbb-mnist" in table


def test_regular_install_finds_its_configs(tmp_path):
    """Not only the editable install: a built wheel ships conf/ as bbbprune.conf."""
    repo = Path(__file__).resolve().parents[1]
    target = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(repo),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert (target / "bbbprune" / "conf" / "method" / "bbb.yaml").exists()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bbbprune; print(bbbprune.__file__); "
            "from bbbprune.cli import main; "
            "sys.argv=['bbbprune','train','method=bbb','--cfg','job']; main()",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(str(target)), "imported the editable copy, not the wheel"
    assert "BayesByBackprop" in out.stdout
