"""Atomic writes (temp file + rename), checkpoints, and the code version stamped on records."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .errors import UserError


def current_umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file and a rename. ``mkstemp`` creates the file 0600; it is
    given the mode a plain ``open`` would (0666 less the umask) before it takes ``path``'s name."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: readers see the old file or the whole new one."""
    data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    _atomic_write(path, lambda fh: fh.write(data))


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda fh: fh.write(text.encode()))


def write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda fh: fh.write(data))


def read_json(path: Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


# Tests only (tests/test_faults.py): stall this many seconds halfway through each checkpoint
# write, after touching PAUSE_MARKER beside it, so that a kill lands inside the write.
PAUSE_ENV = "BBBPRUNE_TEST_CHECKPOINT_PAUSE"
PAUSE_MARKER = ".checkpoint-write-paused"


def _paused_save(state: dict, fh, path: Path, seconds: float) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    fh.write(data[: len(data) // 2])
    fh.flush()
    (Path(path).parent / PAUSE_MARKER).touch()
    time.sleep(seconds)
    fh.write(data[len(data) // 2 :])


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save through a temp file and a rename, so a killed write never leaves a partial file."""
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    if pause:
        _atomic_write(path, lambda fh: _paused_save(state, fh, path, pause))
        return
    _atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True``; a damaged file is a UserError, never half-used."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UserError(f"no checkpoint at {path}") from exc
    except Exception as exc:  # truncated zip, unpickling error
        raise UserError(
            f"checkpoint {path} is damaged or not a bbbprune checkpoint: {exc}"
        ) from exc


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit(default: str = "unknown") -> str:
    """The commit of the source tree (``+dirty`` when src/ or conf/ has uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "conf"],
            cwd=here.parents[1],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return default
