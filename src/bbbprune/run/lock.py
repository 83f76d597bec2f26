"""One training process per run directory.

``run_lock(run_dir)`` holds an exclusive ``fcntl.flock`` on ``<run_dir>/.lock`` for as long as
the run is trained. The file names its holder (pid, host, start time) for the message a second
process prints. A second ``bbbprune train`` of the same configuration waits until the first has
finished (and then finds the run trained), or with ``train.lock=fail`` stops at once with a
one-line error naming the holder.

The kernel releases a flock when its holder exits, however it exits (a killed process
included), so a lock left by a dead process is free: the next process takes it and writes its
own name over the dead one's. The file is removed on release; a process that acquired the lock
on a file removed in the meantime notices (the path no longer names the inode it locked) and
tries again, so two processes never both believe they hold it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError, check_choice

LOCK_FILE = ".lock"
LOCK_MODES = ("wait", "fail")


class RunLocked(UserError):
    """Another process holds the run's lock (``train.lock=fail``)."""


def holder(path: Path) -> str:
    """Who holds the lock at ``path``, as written by its holder ("process 123 on host h")."""
    try:
        fields = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    except OSError:
        fields = {}
    if "pid" not in fields:
        return "another process"
    return f"process {fields['pid']} on {fields.get('host', 'an unknown host')}"


def _try_lock(path: Path) -> int | None:
    """An open descriptor of ``path`` holding its flock, or None when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # locked a file its holder removed on release: take the new one


@contextlib.contextmanager
def run_lock(
    run_dir: Path, mode: str = "wait", log=print, poll_seconds: float = 0.5
) -> Iterator[Path]:
    """Hold the training lock of ``run_dir`` for the ``with`` block.

    mode ``wait``: if another process holds it, say which and wait for it; ``fail``: raise a
    UserError naming the holder."""
    check_choice("train.lock", mode, LOCK_MODES)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = _try_lock(path)
    if fd is None:
        if mode == "fail":
            raise RunLocked(
                f"run {run_dir.name} is being trained by {holder(path)} (lock {path}); "
                "wait for it, or stop that process"
            )
        log(f"{run_dir.name}: being trained by {holder(path)}; waiting for it to finish")
        while fd is None:
            time.sleep(poll_seconds)
            fd = _try_lock(path)
    try:
        os.ftruncate(fd, 0)
        text = f"pid={os.getpid()}\nhost={socket.gethostname()}\nsince={time.time():.0f}\n"
        os.pwrite(fd, text.encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still locked: a waiter that opened it retries (above)
        os.close(fd)
