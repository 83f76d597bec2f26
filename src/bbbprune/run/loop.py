"""One training loop for every method.

The loop asks the method for its layers, its extra loss terms and (optionally) its optimizer;
it never branches on which method it runs. Data stay on the device as tensors and are batched
by index. A checkpoint is written atomically after every epoch; ``train.resume=true`` continues
from it and ends with the same numbers as an uninterrupted run (same seed, same device).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from ..data.tensors import load_tensors
from ..errors import UserError
from ..evaluation.predictive import method_metrics
from ..evaluation.progress import eval_subset
from ..evaluation.records import METRICS, RECORDS, run_record
from ..methods import build_method
from ..nets.models import build_model, count_parameters
from ..pruning.masking import SCOPES, check_fraction, sparsity
from ..storage import (
    load_checkpoint,
    read_json,
    save_checkpoint,
    write_json,
    write_text,
)
from ..tracking import Tracker, open_tracker
from .checkpoints import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    CONFIG,
    check_compatible,
    model_spec,
    rng_state,
    set_rng_state,
)
from .distributed import is_main_process, resolve_device
from .distributed import setup as setup_distributed
from .epoch import run_epoch
from .epoch_log import EpochLog
from .identity import model_label, run_directory
from .init_from import initialise_from
from .lock import run_lock
from .prune_run import prune_run


def validate_config(cfg: DictConfig) -> None:
    """Options checked once, at the boundary, before any work."""
    if int(cfg.train.epochs) < 1:
        raise UserError(f"train.epochs must be >= 1, got {cfg.train.epochs}")
    if int(cfg.train.batch_size) < 1:
        raise UserError(f"train.batch_size must be >= 1, got {cfg.train.batch_size}")
    for f in cfg.prune.fractions:
        check_fraction(f)
    if cfg.prune.scope not in SCOPES:
        raise UserError(f"unknown prune.scope {cfg.prune.scope!r}; valid: {', '.join(SCOPES)}")


def build(cfg: DictConfig, device: torch.device, log=print):
    """Data, method and freshly initialised model for ``cfg`` (seeded)."""
    torch.manual_seed(int(cfg.seed))
    data = load_tensors(cfg.dataset, device, log=log)
    method = build_method(cfg.method)
    spec = model_spec(cfg, data.input_shape, data.n_classes, method)
    model = build_model(spec, method.layer_factory())
    if cfg.train.get("init_from"):
        initialise_from(model, cfg, spec)
        method.on_init_from(model)
    elif not method.trains:
        raise UserError(
            f"method={method.name} trains nothing: give train.init_from=<a trained run, its "
            "method name (e.g. sgd), or a checkpoint / state-dict file>"
        )
    return data, method, spec, model.to(device)


def fit(cfg: DictConfig, run_dir: Path, log=print, tracker: Tracker | None = None) -> dict:
    """Train to the end (resuming if asked), write the checkpoint and metrics.json; every
    epoch's history entry also goes to ``tracker`` (bbbprune.tracking)."""
    tracker = tracker or Tracker()
    shard = setup_distributed(cfg.train.get("distributed", "auto"), resolve_device(cfg.device.name))
    device = shard.device
    data, method, spec, model = build(cfg, device, log)
    # per-epoch validation and final test metrics on prune.eval_subset images (smoke runs)
    data = eval_subset(data, cfg.prune.get("eval_subset") if cfg.get("prune") else None)
    optimizer = (
        method.make_optimizer(model, instantiate(cfg.method.optimizer)) if method.trains else None
    )
    scheduler = instantiate(cfg.train.scheduler)(optimizer) if cfg.train.get("scheduler") else None
    shuffle = torch.Generator().manual_seed(int(cfg.seed) + 1)
    ckpt_path = run_dir / CHECKPOINT
    history, start_epoch = [], 0
    if cfg.train.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        check_compatible(state, method, spec, ckpt_path)
        model.load_state_dict(state["model"])
        method.load_state_dict(state.get("method_state") or {})
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], shuffle)
        history, start_epoch = state["history"], int(state["epoch"])
        log(f"resuming {run_dir.name} after epoch {start_epoch}")
        for entry in history:
            tracker.log_epoch(entry)
    net = shard.wrap(model)  # DistributedDataParallel under torchrun, else the model itself
    if shard.is_writer:
        write_text(run_dir / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))

    def save(epoch: int) -> None:
        """Write the checkpoint after ``epoch`` epochs, atomically."""
        save_checkpoint(
            ckpt_path,
            {
                "format": CHECKPOINT_FORMAT,
                "method": method.name,
                "model_spec": spec,
                "model": model.state_dict(),
                "method_state": method.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch,
                "rng": rng_state(shuffle),
                "history": history,
                "config": OmegaConf.to_container(cfg, resolve=True),
            },
        )

    epochs = int(cfg.train.epochs) if method.trains else 0
    if not method.trains and not history:  # a post-hoc method: fit the posterior, train nothing
        t0 = time.perf_counter()
        stats = method.fit_posterior(model, data, int(cfg.train.batch_size))
        wall = time.perf_counter() - t0
        val = method_metrics(method, model, data.x_val, data.y_val, "mean", data.likelihood)
        history.append(
            {
                "epoch": 0,
                "train_loss": None,
                "train_accuracy": None,
                **stats,
                "val_accuracy": val["accuracy"],
                "val_nll": val["nll"],
                "val_error": val["error"],
                "wall_time_s": wall,
            }
        )
        tracker.log_epoch(history[-1])
        if shard.is_writer:
            save(0)
    epoch_log = EpochLog(run_dir, epochs, fresh=start_epoch == 0) if shard.is_writer else None
    bar = tqdm(
        range(start_epoch, epochs),
        desc=run_dir.name[:40],
        initial=start_epoch,
        total=epochs,
        disable=None if cfg.train.progress and shard.is_writer else True,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0].get("lr")  # the rate this epoch trains with
        stats = run_epoch(
            net,
            method,
            optimizer,
            data,
            int(cfg.train.batch_size),
            shuffle,
            epoch,
            bool(cfg.train.progress) and shard.is_writer,
            shard,
        )
        if scheduler is not None:
            scheduler.step()
        stats.update(method.on_epoch_end(model, optimizer, epoch))
        stats.update(method.epoch_scalars(model, epoch))
        wall = time.perf_counter() - t0
        val = method_metrics(method, model, data.x_val, data.y_val, "mean", data.likelihood)
        history.append(
            {
                "epoch": epoch + 1,
                **stats,
                "val_accuracy": val["accuracy"],
                "val_nll": val["nll"],
                "val_error": val["error"],
                **({"lr": float(lr)} if lr is not None else {}),
                "wall_time_s": wall,
            }
        )
        tracker.log_epoch(history[-1])
        bar.set_postfix(loss=f"{stats['train_loss']:.4f}", val_acc=f"{val['accuracy']:.4f}")
        if not shard.is_writer:
            continue
        save(epoch + 1)
        epoch_log.epoch(history[-1])  # after the checkpoint: the log never runs ahead of it

    # the mean weights' test metrics; the other prediction modes (a sampled predictive costs S
    # passes, for LeNet-5 Sparse VD 26 times the mean's) are in the unpruned pruning records
    test = {
        "mean": method_metrics(method, model, data.x_test, data.y_test, "mean", data.likelihood)
    }
    metrics = run_record(
        run_dir.name,
        method.describe(),
        dataset=data.name,
        model=model_label(spec),
        seed=int(cfg.seed),
        scale=cfg.scale.name,
        epochs=epochs,
        n_train=data.n_train,
        parameters=count_parameters(model),
        prunable=sparsity(model)["prunable"],
        history=history,
        test=test,
        device=device,
    )
    shard.close()
    if not shard.is_writer:
        return metrics
    write_json(run_dir / METRICS, metrics)
    log(
        f"{run_dir.name}: test "
        + ", ".join(f"{m} error {t['error']:.2f}%" for m, t in test.items())
    )
    return metrics


def train(cfg: DictConfig, log=print) -> Path:
    """Train (or skip, if already finished) and evaluate the configured pruning levels, holding
    the run directory's lock (``run/lock.py``; under torchrun, rank 0 holds it).

    Returns the run directory."""
    validate_config(cfg)
    if not is_main_process():
        return _train_locked(cfg, log)
    with run_lock(run_directory(cfg), cfg.train.get("lock", "wait"), log):
        return _train_locked(cfg, log)


def _train_locked(cfg: DictConfig, log=print) -> Path:
    run_dir = run_directory(cfg)
    metrics_file = run_dir / METRICS
    finished = metrics_file.exists() and read_json(metrics_file).get("finished")
    train_now = not finished or bool(cfg.train.force)
    if not train_now:
        log(f"{run_dir.name}: already trained, not training again")
    # a run trained now is tracked (logger=...): params, epochs, then its records and files
    with open_tracker(cfg, run_dir, enabled=train_now and is_main_process()) as tracker:
        if train_now:
            run_dir.mkdir(parents=True, exist_ok=True)
            fit(cfg, run_dir, log, tracker)
        if not is_main_process():  # DDP: rank 0 alone evaluates and writes the pruning records
            return run_dir
        method = build_method(cfg.method)
        criteria = cfg.prune.criteria if cfg.prune.get("criteria") else method.criteria
        t0 = time.perf_counter()
        written = prune_run(run_dir, cfg, list(criteria), list(cfg.prune.fractions), log=log)
        if written:  # the evaluation's wall time beside the training's (tables' Runs section)
            metrics = read_json(metrics_file)
            metrics["evaluation_time_s"] = time.perf_counter() - t0
            metrics["evaluation_records"] = len(written)
            write_json(metrics_file, metrics)
        records = sorted((run_dir / RECORDS).glob("*.json"))
        tracker.finish(records, [run_dir / CONFIG, run_dir / METRICS, *run_dir.glob("*.png")])
    return run_dir
