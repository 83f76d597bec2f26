"""One training process per run directory: a second process waits for the first (naming it) or,
with train.lock=fail, stops with one line naming it; a lock left by a killed process is taken
over; two `bbbprune train` processes of one configuration train the run once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import compose_config, smoke_overrides

from bbbprune.errors import UserError
from bbbprune.run.identity import run_directory
from bbbprune.run.lock import LOCK_FILE, run_lock

BIN = Path(sys.executable).parent / "bbbprune"

HOLD = """
import sys, time
from pathlib import Path
from bbbprune.run.lock import run_lock
with run_lock(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    Path(sys.argv[1], "events").open("a").write(f"in {time.time()}\\n")
    time.sleep(float(sys.argv[3]))
    Path(sys.argv[1], "events").open("a").write(f"out {time.time()}\\n")
"""


def _holder(run_dir: Path, mode: str = "wait", seconds: float = 600.0) -> subprocess.Popen:
    """A process that takes the lock, prints "held", holds it ``seconds``, releases it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(run_dir), mode, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc


def _wait_held(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()


def test_a_second_process_fails_with_the_holders_pid_or_waits_for_it(tmp_path):
    run_dir = tmp_path / "run"
    first = _holder(run_dir, seconds=3.0)
    try:
        _wait_held(first)
        with pytest.raises(UserError, match=rf"being trained by process {first.pid} on "):
            with run_lock(run_dir, "fail"):
                pass
        messages = []
        with run_lock(run_dir, "wait", log=messages.append, poll_seconds=0.05):
            entered = time.time()
            assert (run_dir / LOCK_FILE).read_text().startswith(f"pid={os.getpid()}\n")
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
    assert len(messages) == 1 and f"process {first.pid}" in messages[0]
    events = dict(line.split() for line in (run_dir / "events").read_text().splitlines())
    assert entered >= float(events["out"])  # only after the first one let go
    assert not (run_dir / LOCK_FILE).exists()  # removed on release


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    first = _holder(run_dir)
    _wait_held(first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert f"pid={first.pid}" in (run_dir / LOCK_FILE).read_text()  # the dead holder's file
    with run_lock(run_dir, "fail"):  # free at once: no error, no wait
        assert (run_dir / LOCK_FILE).read_text().startswith(f"pid={os.getpid()}\n")


def test_unknown_lock_mode_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown train.lock 'never'; valid: fail, wait"):
        with run_lock(tmp_path, "never"):
            pass


SLOW_TRAIN = """
import sys, time
from pathlib import Path
import bbbprune.run.loop as loop
release, plain_epoch = Path(sys.argv[1]), loop.run_epoch
def held_epoch(*args, **kwargs):  # the first epoch waits until the test releases it
    print("training", flush=True)
    while not release.exists():
        time.sleep(0.05)
    return plain_epoch(*args, **kwargs)
loop.run_epoch = held_epoch
from bbbprune.cli import main
main(["train", *sys.argv[2:]])
"""


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _train_cli(overrides, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN), "train", *overrides, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


@pytest.mark.slow  # end to end through the command line (about 20 s): make test-all
def test_two_train_commands_of_one_run_train_it_once(tmp_path, data_root):
    """A second `bbbprune train` of a run that a first one is training waits, naming the first,
    and then finds the run trained; with train.lock=fail it stops with one line naming it."""
    overrides = [*smoke_overrides(tmp_path, data_root), "method=sgd", "prune.fractions=[0.5]"]
    release = tmp_path / "release"
    first = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SLOW_TRAIN), str(release), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert first.stdout.readline().strip() == "training", first.stderr.read()
        fail = _train_cli(overrides, "train.lock=fail")
        _, fail_err = fail.communicate(timeout=600)
        second_log = tmp_path / "second.log"
        with second_log.open("w") as fh:
            second = subprocess.Popen(
                [str(BIN), "train", *overrides],
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
                env=_env(),
            )
        deadline = time.time() + 600
        while "waiting" not in second_log.read_text() and second.poll() is None:
            assert time.time() < deadline
            time.sleep(0.1)
        release.touch()  # the first run may finish now
        assert first.wait(timeout=600) == 0, first.stderr.read()
        assert second.wait(timeout=600) == 0, second_log.read_text()
    finally:
        first.kill()
    run_dir = run_directory(compose_config(overrides))
    assert fail.returncode == 2, fail_err
    assert fail_err.strip().count("\n") == 0 and "Traceback" not in fail_err, fail_err
    expected = f"bbbprune: error: run {run_dir.name} is being trained by process {first.pid}"
    assert fail_err.startswith(expected), fail_err
    assert not (run_dir / "failed.json").exists()  # the first run is not marked failed
    log = second_log.read_text()
    assert f"{run_dir.name}: being trained by process {first.pid} on " in log
    assert f"{run_dir.name}: already trained, not training again" in log
