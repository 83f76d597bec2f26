"""The ``bbbprune`` command: ``bbbprune <command> [hydra overrides...]``.

Commands: train, prune, export, table, data. Each composes the same root config (conf/config.yaml,
shipped inside the package as bbbprune.conf) and accepts Hydra's options, e.g. ``-m`` sweeps.
"""

from __future__ import annotations

import sys
import traceback

import hydra
from omegaconf import DictConfig

from .errors import UserError

USAGE = """usage: bbbprune <command> [key=value ...] [-m]

commands:
  train   train one model (method=, dataset=, model=, scale=, seed=) and evaluate its pruning
  prune   prune a trained run:  run=<run dir> prune.criterion=snr prune.fraction=0.9
  export  write a deployable pruned model (sparse / physically smaller, plain-torch loadable):
          run=<run dir> prune.criterion=snr prune.fraction=0.98 [export.layout=auto|sparse|dense]
          [export.path=model.pt] [export.format=pt|safetensors|onnx] [export.posterior=true]
  table   gather records into results/<experiment>.md:  experiment=<name>
          [logger=mlflow: the table and figures as artifacts of the experiment's parent run]
  data    provision a dataset:  dataset=mnist|fmnist|cifar10

Tracking (train): logger=csv|tensorboard|mlflow, or several: logger=[csv,tensorboard,mlflow].
Hydra options work after the command: -m (multirun sweep), --cfg job, --help."""


def cmd_train(cfg: DictConfig) -> None:
    from .run.launchers import resume_if_requeued
    from .run.loop import train

    train(resume_if_requeued(cfg))


def cmd_prune(cfg: DictConfig) -> None:
    from pathlib import Path

    from .run.prune_run import prune_run

    if not cfg.run:
        raise UserError("bbbprune prune needs run=<run directory> (see runs/)")
    recs = prune_run(
        Path(cfg.run), cfg, [cfg.prune.criterion], [cfg.prune.fraction], overwrite=True
    )
    for r in recs:
        print(
            f"{r['run']}: {r['criterion']} {r['fraction']:.2%} ({r['prediction']}): "
            f"sparsity {r['achieved_sparsity']:.4f}, test error {r['error']:.2f}%"
        )


def cmd_export(cfg: DictConfig) -> None:
    from pathlib import Path

    import torch

    from .deploy.export import export_run
    from .run.checkpoints import load_run

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
    from .report.table import write_experiment_report
    from .tracking import log_table

    table = write_experiment_report(cfg)
    files = [table.with_suffix(".records.json"), *sorted(table.parent.glob(f"{table.stem}_*.png"))]
    log_table(cfg, table, files)  # logger=mlflow: artifacts of the experiment's parent run


def cmd_data(cfg: DictConfig) -> None:
    from pathlib import Path

    from .data.registry import provision

    folder = provision(
        cfg.dataset.name,
        Path(cfg.dataset.root),
        tuple(cfg.dataset.sources),
        bool(cfg.dataset.verify),
    )
    print(f"{cfg.dataset.name}: ready in {folder} (checksums verified: {bool(cfg.dataset.verify)})")


COMMANDS = {
    "train": cmd_train,
    "prune": cmd_prune,
    "table": cmd_table,
    "data": cmd_data,
    "export": cmd_export,
}


def _failure_dir(name: str, cfg: DictConfig):
    """Where a failed job of ``name`` is recorded: a training run's own directory."""
    if name != "train":
        return None
    from .run.identity import run_directory

    try:
        return run_directory(cfg)
    except Exception:  # a config too broken to name its run
        return None


def _guarded(command, name: str = ""):
    """One-line errors for user mistakes. In a sweep (-m) a failing job is recorded
    (failures.py) and raised as JobFailed, so Hydra runs the other jobs and exits 1 at the end."""

    def task(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from .run.failures import JobFailed, clear_failure, failure_reason, record_failure
        from .run.lock import RunLocked

        hc = HydraConfig.get()
        failure_dir = _failure_dir(name, cfg)
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
                try:
                    record_failure(failure_dir, exc, list(hc.overrides.task))
                except UserError:
                    pass  # the disk refuses; the error below still says what failed
            if not isinstance(exc, UserError):
                if hc.mode != RunMode.MULTIRUN:
                    raise
                traceback.print_exc()
            print(f"bbbprune: error: {exc}", file=sys.stderr)
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


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command = argv[0]
    if command not in COMMANDS:
        print(
            f"bbbprune: error: unknown command {command!r}; valid: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.argv = [f"bbbprune {command}", *argv[1:]]
    app = hydra.main(version_base="1.3", config_path="pkg://bbbprune.conf", config_name="config")(
        _guarded(COMMANDS[command], command)
    )
    app()


if __name__ == "__main__":
    main()
