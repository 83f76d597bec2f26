"""The training log: one line per epoch, always appended to ``train.log`` in the run directory,
and written to stderr when stderr is not a terminal (a terminal shows the progress bar instead).

A line reads ``epoch 3/20  loss 0.1234 (nll 0.1101, kl 0.0133)  train acc 0.9650  val acc 0.9712
12.3 s``; ``bbbprune runs`` counts these lines to say how far an unfinished run got.
"""

from __future__ import annotations

import sys
from pathlib import Path

TRAIN_LOG = "train.log"


def format_epoch(entry: dict, epochs: int) -> str:
    """One epoch's history entry (run.loop) as one line: loss and its terms, accuracies, time."""
    terms = [
        f"{k.removeprefix('train_')} {v:.4f}"
        for k, v in entry.items()
        if k.startswith("train_")
        and k not in ("train_loss", "train_accuracy")
        and isinstance(v, int | float)
    ]
    loss = f"loss {entry['train_loss']:.4f}" + (f" ({', '.join(terms)})" if terms else "")
    return (
        f"epoch {entry['epoch']}/{epochs}  {loss}  train acc {entry['train_accuracy']:.4f}  "
        f"val acc {entry['val_accuracy']:.4f}  {entry['wall_time_s']:.1f} s"
    )


class EpochLog:
    """Appends epoch lines to ``<run_dir>/train.log`` (and to stderr when it is not a tty)."""

    def __init__(self, run_dir: Path, epochs: int, fresh: bool = True, stream=None):
        """``fresh``: training starts at epoch 1, so an older log (train.force) is replaced."""
        self.path = Path(run_dir) / TRAIN_LOG
        self.epochs = epochs
        self.stream = sys.stderr if stream is None else stream
        if fresh:
            self.path.unlink(missing_ok=True)

    def line(self, text: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(text + "\n")
        isatty = getattr(self.stream, "isatty", lambda: False)
        if not isatty():
            print(text, file=self.stream, flush=True)

    def epoch(self, entry: dict) -> None:
        self.line(format_epoch(entry, self.epochs))
