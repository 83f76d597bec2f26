"""``bbbprune train [-m] ... --dry-run``: the jobs a sweep would run, which are done, and how long
the rest should take, judged from the per-epoch times of the runs already on disk.

The jobs are Hydra's: the command line's sweeps combined with the experiment's
``hydra.sweeper.params`` and ``hydra.sweeper.arms`` (bbbprune.run.sweep: a command-line value
replaces a ``params`` value and picks the arms with that value), each composed as the job
would be; a job is done when its run directory holds a finished ``metrics.json``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from omegaconf import OmegaConf

from .options import ConfigView, first_job_text, parse_overrides


def sweep_jobs(overrides: list[str], multirun: bool, view: ConfigView) -> list[list[str]]:
    """The overrides of every job: the command line's and the experiment's sweeps expanded
    (``hydra.sweeper.params`` crossed with each of ``hydra.sweeper.arms``; bbbprune.run.sweep)."""
    from ..run.sweep import declared
    from ..run.sweep import sweep_jobs as expand

    parsed = parse_overrides(overrides)
    if not multirun:
        return expand({}, None, overrides)
    sweeper = view.compose([first_job_text(o) for o in parsed], hydra_config=True).hydra.sweeper
    return expand(*declared(sweeper), overrides)


def time_keys(method, dataset, model, scale) -> tuple[tuple, tuple]:
    """The keys of ``EpochTimes``, most specific first: (method, dataset, model, scale), then
    (model, scale). The scale is in both: a smoke run's epoch (a small training subset) says
    nothing about a small one's."""
    return (method, dataset, model, scale), (model, scale)


class EpochTimes:
    """The per-epoch wall times of the finished runs under ``runs_root``, to estimate a job's.

    Each run's time is kept per epoch and per training example (per epoch / ``n_train``), under
    each of its ``time_keys``. A job's epoch is estimated from the per-example time times its
    training-set size (``dataset.train_subset``, else the whole split: the ``n_train`` of a
    seen run of that dataset without a subset), so that a run on 10k images does not stand for
    one on 50k; without a size, from the per-epoch time."""

    def __init__(self, runs_root: Path):
        self.per_epoch: dict[tuple, list[float]] = {}
        self.per_example: dict[tuple, list[float]] = {}
        self.whole_split: dict[str, int] = {}
        for metrics_file in runs_root.glob("*/metrics.json"):
            try:
                m = json.loads(metrics_file.read_text())
                per_epoch = float(m["wall_time_per_epoch_s"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            keys = time_keys(m.get("method"), m.get("dataset"), m.get("model"), m.get("scale"))
            n_train = m.get("n_train")
            for key in keys:
                self.per_epoch.setdefault(key, []).append(per_epoch)
                if n_train:
                    self.per_example.setdefault(key, []).append(per_epoch / int(n_train))
            if n_train and _train_subset(metrics_file.parent) is None:
                self.whole_split[str(m.get("dataset"))] = int(n_train)

    def seconds_per_epoch(self, keys, dataset: str, train_subset) -> float | None:
        n = int(train_subset) if train_subset else self.whole_split.get(dataset)
        for key in keys:
            if n and self.per_example.get(key):
                return statistics.median(self.per_example[key]) * n
            if self.per_epoch.get(key):
                return statistics.median(self.per_epoch[key])
        return None


def _train_subset(run_dir: Path):
    """``dataset.train_subset`` of a run's saved config (None: the whole split, or unknown)."""
    try:
        return OmegaConf.load(run_dir / "config.yaml").dataset.get("train_subset")
    except Exception:  # no or unreadable config: treated as unknown
        return "unknown"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def dry_run(overrides: list[str], multirun: bool) -> str:
    """The text of ``bbbprune train ... --dry-run``."""
    from ..evaluation.records import METRICS
    from ..run.identity import model_label, run_directory

    lines, todo_seconds, unknown, n_done = [], 0.0, 0, 0
    with ConfigView() as view:
        jobs = sweep_jobs(overrides, multirun, view)
        cfgs = [(job, view.compose(job)) for job in jobs]
    seen = None
    for job, cfg in cfgs:
        run_dir = run_directory(cfg)
        metrics = run_dir / METRICS
        finished = False
        if metrics.is_file():
            try:
                finished = bool(json.loads(metrics.read_text()).get("finished"))
            except ValueError:
                pass
        if seen is None:
            seen = EpochTimes(Path(cfg.paths.runs))
        epochs = int(cfg.train.epochs)
        what = " ".join(o for o in job if o.split("=", 1)[0] in _swept(jobs)) or "(one job)"
        if finished:
            n_done += 1
            lines.append(f"  done    {run_dir.name}  {what}")
            continue
        label = model_label(OmegaConf.to_container(cfg.model, resolve=True))
        keys = time_keys(cfg.method.name, cfg.dataset.name, label, str(cfg.scale.name))
        per_epoch = seen.seconds_per_epoch(
            keys, str(cfg.dataset.name), cfg.dataset.get("train_subset")
        )
        if per_epoch:
            seconds = epochs * per_epoch
            todo_seconds += seconds
            estimate = f"~{_duration(seconds)} ({epochs} epochs)"
        else:
            unknown += 1
            estimate = f"{epochs} epochs, no time seen for {label}"
        lines.append(f"  to run  {run_dir.name}  {what}  {estimate}")
    n_todo = len(cfgs) - n_done
    head = f"{len(cfgs)} jobs: {n_done} done, {n_todo} to run"
    tail = f"estimate for the jobs to run: ~{_duration(todo_seconds)}, training only"
    if unknown:
        tail += f" ({unknown} with no per-epoch time seen, not counted)"
    return "\n".join([head, *lines, tail if n_todo else "nothing to run"])


def _swept(jobs: list[list[str]]) -> set[str]:
    """Keys whose value differs between jobs, or that only some jobs set (an arm's)."""
    values: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for job in jobs:
        for o in job:
            k, _, v = o.partition("=")
            values.setdefault(k, set()).add(v)
            counts[k] = counts.get(k, 0) + 1
    return {k for k, v in values.items() if len(v) > 1 or counts[k] < len(jobs) or len(jobs) == 1}
