"""What the evaluation after training shows while it runs, and how much data it looks at.

A terminal gets a progress bar over the (criterion, fraction) pairs; anything else (a pipe, a
file, a cluster job's log) gets one line per pair on stderr. ``prune.eval_subset`` (smoke runs)
evaluates on the first n test and validation images only.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from tqdm.auto import tqdm


def eval_subset(data, n):
    """``data`` with its test and validation splits cut to their first ``n`` examples
    (``n`` None: unchanged)."""
    if not n:
        return data
    n = int(n)
    return dataclasses.replace(
        data,
        x_test=data.x_test[:n],
        y_test=data.y_test[:n],
        x_val=data.x_val[:n],
        y_val=data.y_val[:n],
    )


class EvalProgress:
    """Progress over the pruning evaluations of one run."""

    def __init__(self, run: str, total: int, stream=None):
        self.run, self.total = run, total
        self.stream = sys.stderr if stream is None else stream

    def wrap(self, todo):
        tty = getattr(self.stream, "isatty", lambda: False)()
        t0 = time.perf_counter()
        items = tqdm(todo, desc=f"evaluating {self.run[:30]}", leave=False, disable=not tty)
        for i, item in enumerate(items, 1):
            yield item
            if not tty:
                criterion, fraction = item[0], item[1]
                at = "its own rule" if fraction is None else f"{float(fraction):.2%}"
                print(
                    f"evaluated {i}/{self.total}: {criterion} at {at} "
                    f"({time.perf_counter() - t0:.1f} s)",
                    file=self.stream,
                    flush=True,
                )
