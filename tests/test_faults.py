"""Runs that survive faults: a training process killed with SIGKILL at random moments, some of
them inside a checkpoint write, resumes from its last complete checkpoint and ends with exactly
the numbers of an uninterrupted run; a half-written checkpoint is never loaded; a disk that
refuses a write gives one clear error and leaves the old file whole."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import compose_config, smoke_overrides, write_tiny_idx

from bbbprune import storage
from bbbprune.errors import UserError
from bbbprune.run.loop import train

EPOCHS = 6
TRIALS = 5  # kills; trials 1 and 3 land inside a checkpoint write
DURING_WRITE = (1, 3)


def _train_in_child(overrides: list[str], env: dict) -> None:
    os.environ.update(env)
    torch.set_num_threads(1)
    train(compose_config(overrides), log=lambda *_: None)


def _start(overrides, env_extra=None) -> multiprocessing.Process:
    """Train in a forked child process: torch is already imported, so a trial costs its
    training time rather than an interpreter start."""
    proc = multiprocessing.get_context("fork").Process(
        target=_train_in_child, args=(list(overrides), dict(env_extra or {}))
    )
    proc.start()
    return proc


def _finish(proc: multiprocessing.Process) -> None:
    proc.join(timeout=300)
    assert proc.exitcode == 0, f"training child exited with {proc.exitcode}"


def _metrics(runs: Path) -> dict:
    (run_dir,) = [p for p in runs.iterdir() if p.name != "hydra"]
    m = json.loads((run_dir / "metrics.json").read_text())
    return {
        "history": [{k: v for k, v in h.items() if k != "wall_time_s"} for h in m["history"]],
        "test": m["test"],
    }


def _run_dir(runs: Path) -> Path | None:
    dirs = [p for p in runs.glob("*") if p.name != "hydra"] if runs.exists() else []
    return dirs[0] if dirs else None


def _epoch_of(run_dir: Path) -> int:
    ckpt = run_dir / "checkpoint.pt"
    return int(storage.load_checkpoint(ckpt)["epoch"]) if ckpt.exists() else 0


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tmp_path):
    data = tmp_path / "data"
    write_tiny_idx(data / "MNIST" / "raw", n_train=2000, n_test=200)
    base = smoke_overrides(tmp_path, data) + [
        "method=dropout",  # dropout masks: the RNG state must survive the kill too
        f"train.epochs={EPOCHS}",
        "model.hidden=[256,256]",
        "dataset.val_size=200",
        "prune.fractions=[0.5]",
    ]
    ref_runs, cut_runs = tmp_path / "ref", tmp_path / "cut"

    _finish(_start(base + [f"paths.runs={ref_runs}"]))
    reference = _metrics(ref_runs)
    ref_dir = _run_dir(ref_runs)
    # training proper: from config.yaml (written just before the first epoch) to metrics.json
    train_s = (ref_dir / "metrics.json").stat().st_mtime - (ref_dir / "config.yaml").stat().st_mtime

    cut = base + [f"paths.runs={cut_runs}", "train.resume=true"]
    rng = random.Random(8)
    epochs_at_kill, stray_temp_files = [], 0
    for trial in range(TRIALS):
        left = 1 - _epoch_of(_run_dir(cut_runs) or tmp_path) / EPOCHS  # share of epochs to go
        started = time.time()
        proc = _start(cut, {storage.PAUSE_ENV: "60"} if trial in DURING_WRITE else None)
        marker = storage.PAUSE_MARKER if trial in DURING_WRITE else "config.yaml"
        deadline = time.monotonic() + 180
        while True:  # until this process stalls in a checkpoint write / begins its epochs
            assert proc.is_alive(), f"trial {trial}: finished before the kill"
            assert time.monotonic() < deadline, f"trial {trial}: never got to {marker}"
            run_dir = _run_dir(cut_runs)
            if run_dir and (run_dir / marker).exists():
                if (run_dir / marker).stat().st_mtime >= started - 0.05:
                    break
            time.sleep(0.02)
        if trial in DURING_WRITE:
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside the stalled write
        else:
            time.sleep(rng.uniform(0.05, 0.8) * left * train_s)  # mid-epoch or mid-write
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=60)
        assert proc.exitcode == -signal.SIGKILL, f"trial {trial}: exited before the kill"
        if run_dir is not None:
            (run_dir / storage.PAUSE_MARKER).unlink(missing_ok=True)
            # what a killed write leaves is a temp file beside the checkpoint, never the
            # checkpoint itself: checkpoint.pt always loads
            stray_temp_files += len(list(run_dir.glob(".checkpoint.pt.*.tmp")))
            epochs_at_kill.append(_epoch_of(run_dir))

    assert stray_temp_files >= len(DURING_WRITE), "the kills inside a write left no partial file"
    assert 0 < epochs_at_kill[-1] < EPOCHS, epochs_at_kill  # the last run resumes mid-way
    _finish(_start(cut))
    assert _metrics(cut_runs) == reference


def test_partial_temp_file_is_never_loaded_and_damaged_checkpoint_is_refused(tmp_path):
    """A write killed halfway leaves only ``.checkpoint.pt.*.tmp``; loading goes to the old
    complete file. A checkpoint damaged later (disk fault) is refused with a clear error rather
    than used or silently replaced (resume would otherwise start over without saying so)."""
    path = tmp_path / "checkpoint.pt"
    storage.save_checkpoint(path, {"epoch": 1, "w": torch.arange(1000.0)})
    full = path.read_bytes()
    partial = tmp_path / ".checkpoint.pt.abc.tmp"
    partial.write_bytes(full[: len(full) // 2])
    assert storage.load_checkpoint(path)["epoch"] == 1
    with pytest.raises(UserError, match="damaged"):
        storage.load_checkpoint(partial)
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(UserError, match="damaged or not a bbbprune checkpoint"):
        storage.load_checkpoint(path)


def test_disk_full_is_one_clear_error_and_the_old_file_stays_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    storage.write_json(path, {"old": True})

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, "fsync", full_disk)
    with pytest.raises(UserError, match=f"cannot write {path}: No space left on device"):
        storage.write_json(path, {"new": True})
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left
    with pytest.raises(UserError, match="cannot write"):
        storage.write_text(tmp_path / "metrics.json" / "under_a_file.md", "x")
