"""The ``bbbprune`` command: ``bbbprune <command> [hydra overrides...]``.

Commands: train, prune, export, table, overview, data (each composes the root config conf/config.yaml,
shipped inside the package as bbbprune.conf, and accepts Hydra's options, e.g. ``-m`` sweeps)
and runs (lists run directories). Every option is checked (cli/options.py) before torch, data
or checkpoints load; a mistake is one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback

from omegaconf import DictConfig

from ..allocator import keep_freed_memory
from ..errors import UserError
from .options import split_arguments, validate

USAGE = """usage: bbbprune <command> [key=value ...] [-m] [--help]
       bbbprune --version

commands:
  train   train one model (method=, dataset=, model=, scale=, seed=) and evaluate its pruning
  prune   prune a trained run:  run=<run dir> prune.criterion=snr prune.fraction=0.9
  export  write a deployable pruned model (sparse / physically smaller, plain-torch loadable):
          run=<run dir> prune.criterion=snr prune.fraction=0.98 [export.layout=auto|sparse|dense]
          [export.path=model.pt]
  table   gather records into results/<experiment>.md:  experiment=<name>
  overview  results/README.md over the tables written:  [overview.experiments=[a,b,...]]
          [overview.times=<file of name<TAB>seconds lines>]
  data    provision a dataset:  dataset=mnist|fmnist|cifar10 [data.refetch=true]
  runs    list run directories and their state:  [method=bbb state=failed ...]

`bbbprune <command> --help` lists the command's options and the choices of each config group.
Hydra options work after the command: -m (multirun sweep), --cfg job, --hydra-help."""


def cmd_train(cfg: DictConfig) -> None:
    from ..run.launchers import resume_if_requeued
    from ..run.loop import train

    train(resume_if_requeued(cfg))


# `prune -m` over fractions and criteria only: one process loads the run once and evaluates
# every pair (set by _collapse_prune_sweep; empty otherwise).
_PRUNE_GRID: dict[str, list[str]] = {}
PRUNE_SWEEP_KEYS = ("prune.fraction", "prune.criterion")


def _collapse_prune_sweep(inv) -> None:
    """Turn ``prune -m prune.fraction=a,b,...`` into one job that evaluates every value, so a
    sweep over fractions does not reload the run (and torch) once per fraction."""
    from .options import first_job_text, parse_overrides

    parsed = parse_overrides(inv.overrides)
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if not sweeps or any(o.key_or_group not in PRUNE_SWEEP_KEYS for o in sweeps):
        return
    for o in sweeps:
        _PRUNE_GRID[o.key_or_group] = [str(v) for v in o.sweep_string_iterator()]
    inv.overrides = [first_job_text(o) for o in parsed]
    inv.hydra_flags = [f for f in inv.hydra_flags if f not in ("-m", "--multirun")]
    inv.multirun = False


def cmd_prune(cfg: DictConfig) -> None:
    from pathlib import Path

    from ..run.prune_run import prune_run

    if not cfg.run:
        raise UserError("bbbprune prune needs run=<run directory> (see runs/)")
    criteria = _PRUNE_GRID.get("prune.criterion") or [cfg.prune.criterion]
    fractions = [float(f) for f in _PRUNE_GRID.get("prune.fraction") or [cfg.prune.fraction]]
    recs = prune_run(Path(cfg.run), cfg, criteria, fractions, overwrite=True)
    for r in recs:
        print(
            f"{r['run']}: {r['criterion']} {r['fraction']:.2%} ({r['prediction']}): "
            f"sparsity {r['achieved_sparsity']:.4f}, test error {r['error']:.2f}%"
        )


def cmd_export(cfg: DictConfig) -> None:
    from pathlib import Path

    import torch

    from ..deploy.export import export_run
    from ..run.checkpoints import load_run

    if not cfg.run:
        raise UserError("bbbprune export needs run=<run directory> (see runs/)")
    info = export_run(
        Path(cfg.run),
        load_run(Path(cfg.run), torch.device("cpu")),
        cfg.prune.criterion,
        float(cfg.prune.fraction),
        cfg.export.layout,
        cfg.export.path,
        scope=cfg.prune.scope,
        seed=int(cfg.prune.seed),
        fmt=cfg.export.get("format", "pt"),
        posterior=bool(cfg.export.get("posterior", False)),
    )
    print(
        f"wrote {info['path']}: {info['export_bytes']:,} bytes, "
        f"{info['export_size_percent']:.1f} % of the dense float32 network "
        f"({info['dense_bytes']:,} bytes); sparsity {info['sparsity']:.4f}, kept architecture "
        f"{'-'.join(map(str, info['kept_widths']))}; test error {info['error']:.2f} % "
        f"(max |logit difference| from the masked model {info['max_abs_diff']:.1e})"
    )
    if "posterior_bytes" in info:
        print(
            f"posterior: sigma costs {info['posterior_bytes']:,} bytes; sampled predictive test "
            f"error {info['sampled_error']:.2f} %"
        )


def cmd_table(cfg: DictConfig) -> None:
    from ..report.table import write_experiment_report
    from ..tracking import log_table

    table = write_experiment_report(cfg)
    files = [table.with_suffix(".records.json"), *sorted(table.parent.glob(f"{table.stem}_*.png"))]
    log_table(cfg, table, files)  # logger=mlflow: artifacts of the experiment's parent run


def cmd_overview(cfg: DictConfig) -> None:
    from ..report.overview import write_overview_from_config

    write_overview_from_config(cfg)


REFETCH_HINT = "to fetch it again: bbbprune data dataset={name} data.refetch=true"


def _remove_corrupt_files(name: str, root) -> list[str]:
    """Delete the files of dataset ``name`` whose checksum fails, so that provisioning fetches
    them again; return their names."""
    from ..data.registry import DATASETS, verify
    from ..storage import sha256_file

    spec = DATASETS[name]
    folder = spec.files_dir(root)
    removed = []
    for file, expected in spec.sha256.items():
        path = folder / file
        if path.exists() and sha256_file(path) != expected:
            path.unlink()
            removed.append(file)
    if not spec.sha256 and folder.is_dir():  # CIFAR-10: torchvision's md5 list covers the folder
        try:
            verify(spec, root)
        except UserError:
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed


def cmd_data(cfg: DictConfig) -> None:
    from pathlib import Path

    from ..data.registry import provision

    name, root = cfg.dataset.name, Path(cfg.dataset.root)
    if cfg.data.refetch:
        for file in _remove_corrupt_files(name, root):
            print(f"{name}: removed damaged {file}; fetching it again")
    folder = provision(name, root, tuple(cfg.dataset.sources), bool(cfg.dataset.verify))
    print(f"{name}: ready in {folder} (checksums verified: {bool(cfg.dataset.verify)})")


COMMANDS = {
    "train": cmd_train,
    "prune": cmd_prune,
    "table": cmd_table,
    "overview": cmd_overview,
    "data": cmd_data,
    "export": cmd_export,
    "runs": None,  # reads run directories only: no Hydra app (cli/runs.py)
}


def _failure_dir(name: str, cfg: DictConfig):
    """Where a failed job of ``name`` is recorded: a training run's own directory."""
    if name != "train":
        return None
    from ..run.identity import run_directory

    try:
        return run_directory(cfg)
    except Exception:  # a config too broken to name its run
        return None


def _training_started(run_dir) -> bool:
    """Whether the run got as far as training: its config.yaml is written when the first epoch
    starts (a diverged run keeps its directory, so that its failure is listed by the table)."""
    from ..evaluation.records import METRICS
    from ..run.checkpoints import CHECKPOINT, CONFIG

    return any((run_dir / f).exists() for f in (CONFIG, CHECKPOINT, METRICS))


def _with_data_hint(exc: Exception, cfg: DictConfig) -> str:
    message = str(exc)
    if message.startswith("checksum mismatch") and not cfg.get("data", {}).get("refetch"):
        message += "; " + REFETCH_HINT.format(name=cfg.dataset.name)
    return message


def _guarded(command, name: str = ""):
    """One-line errors for user mistakes. In a sweep (-m) a failing job is recorded
    (failures.py) and raised as JobFailed, so Hydra runs the other jobs and exits 1 at the end.
    A training run that fails before its training starts leaves no directory behind."""

    def task(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from ..run.failures import JobFailed, clear_failure, failure_reason, record_failure
        from ..run.lock import RunLocked

        keep_freed_memory()  # once per process: batches reuse freed memory (allocator.py)
        hc = HydraConfig.get()
        failure_dir = _failure_dir(name, cfg)
        existed = failure_dir is not None and failure_dir.is_dir()
        root_existed = failure_dir is not None and failure_dir.parent.is_dir()
        try:
            command(cfg)
        except KeyboardInterrupt:
            print(
                "bbbprune: interrupted (the last complete checkpoint is kept; "
                "rerun with train.resume=true)",
                file=sys.stderr,
            )
            sys.exit(130)
        except Exception as exc:
            locked = isinstance(exc, RunLocked)  # another process trains that run
            if failure_dir is not None and failure_dir.is_dir() and not locked:
                if not existed and not _training_started(failure_dir):
                    shutil.rmtree(failure_dir, ignore_errors=True)
                    if not root_existed and not any(failure_dir.parent.iterdir()):
                        failure_dir.parent.rmdir()
                else:
                    try:
                        record_failure(failure_dir, exc, list(hc.overrides.task))
                    except UserError:
                        pass  # the disk refuses; the error below still says what failed
            if not isinstance(exc, UserError):
                if hc.mode != RunMode.MULTIRUN:
                    raise
                traceback.print_exc()
            message = _with_data_hint(exc, cfg)
            print(f"bbbprune: error: {message}", file=sys.stderr)
            if hc.mode != RunMode.MULTIRUN:
                sys.exit(2)
            raise JobFailed(
                f"bbbprune: error: sweep job #{hc.job.num} "
                f"({' '.join(hc.overrides.task)}) failed: {failure_reason(exc)} "
                "(the other jobs ran; `bbbprune table` lists every failed job)"
            ) from exc
        if failure_dir is not None:
            clear_failure(failure_dir)

    return task


def _error(message: str) -> None:
    print(f"bbbprune: error: {message}", file=sys.stderr)
    sys.exit(2)


def _print(text: str) -> None:
    """Print, and stay quiet when the reader has gone (``bbbprune train --help | head``)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        sys.stderr.close()
        os._exit(0)


def _keeps_hydra_sweep_dir(overrides: list[str]) -> bool:
    """Whether a sweep needs Hydra's folder kept: asked for, or a launcher (submitit) that
    keeps its job logs there."""
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key.startswith(("hydra.sweep", "hydra.output_subdir")):
            return True
        if key == "hydra/launcher" and value.startswith(("submitit", "slurm")):
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if argv[0] in ("--version", "-V"):
        from .. import __version__

        print(f"bbbprune {__version__}")
        return
    command = argv[0]
    if command not in COMMANDS:
        _error(f"unknown command {command!r}; valid: {', '.join(COMMANDS)}")
    try:
        inv = split_arguments(command, argv[1:])
        if inv.help:
            from .help import command_help

            _print(command_help(command))
            return
        if command == "runs":
            from .runs import list_runs

            _print(list_runs(inv.overrides))
            return
        validate(inv)
        if inv.dry_run:
            if command != "train":
                raise UserError(f"--dry-run is an option of train, not of {command}")
            from .dryrun import dry_run

            _print(dry_run(inv.overrides, inv.multirun))
            return
        if command == "prune" and inv.multirun:
            _collapse_prune_sweep(inv)
    except UserError as exc:
        _error(str(exc))
    _run_hydra(command, inv)


def _run_hydra(command: str, inv) -> None:
    """Run the command as a Hydra app. A sweep's bookkeeping folder (multirun.yaml) goes to a
    temporary folder removed afterwards, unless the options ask for it to be kept."""
    import hydra

    from ..run.sweep import register_sweeper

    register_sweeper()  # the sweeper of conf/config.yaml (params and arms)
    args = [*inv.hydra_flags, *inv.overrides]
    tmp = None
    if inv.multirun and not _keeps_hydra_sweep_dir(inv.overrides):
        tmp = tempfile.mkdtemp(prefix="bbbprune-sweep-")
        args.append(f"hydra.sweep.dir={tmp}")
    sys.argv = [f"bbbprune {command}", *args]
    app = hydra.main(version_base="1.3", config_path="pkg://bbbprune.conf", config_name="config")(
        _guarded(COMMANDS[command], command)
    )
    try:
        app()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
