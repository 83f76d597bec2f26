"""One training loop for every method.

The loop asks the method for its layers, its extra loss terms and (optionally) its optimizer;
it never branches on which method it runs. Data stay on the device as tensors and are batched
by index. A checkpoint is written atomically after every epoch; ``train.resume=true`` continues
from it and ends with the same numbers as an uninterrupted run (same seed, same device).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from .complexity import compression_summary
from .data import TensorData, load_tensors
from .distributed import SINGLE, Shard, is_main_process
from .distributed import setup as setup_distributed
from .errors import UserError
from .evaluate import calibration_metrics, classification_metrics, ood_metrics
from .export import export_measurements
from .likelihoods import CATEGORICAL
from .methods import Method, StepInfo, build_method
from .models import build_model, count_parameters
from .pretrained import initialise_from
from .prune import SCOPES, SCORE_FUNCTIONS, apply_masks, check_fraction, prune_model, sparsity
from .runs import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    RECORDS,
    check_compatible,
    load_run,
    model_label,
    model_spec,
    resolve_device,
    run_directory,
)
from .storage import git_commit, load_checkpoint, read_json, save_checkpoint, write_json, write_text
from .structured import removed_units


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def method_metrics(
    method: Method, model: nn.Module, x, y, mode: str, likelihood=CATEGORICAL
) -> dict:
    """Accuracy, error and NLL of the method's predictive ``mode`` on (x, y) (regression: the
    likelihood's metrics, bbbprune.likelihoods)."""
    return likelihood.metrics(method, model, x, y, mode)


def uncertainty_metrics(method: Method, model: nn.Module, data, ood_x, mode: str) -> dict:
    """Error, NLL, ECE and Brier score of the predictive ``mode`` on the test set and, given
    out-of-distribution images ``ood_x``, the predictive entropy and OOD AUROC."""
    if data.likelihood is not CATEGORICAL:  # regression: the likelihood's own metrics
        return method_metrics(method, model, data.x_test, data.y_test, mode, data.likelihood)
    log_probs = method.predict_log_probs(model, data.x_test, mode)
    out = {
        **classification_metrics(log_probs, data.y_test),
        **calibration_metrics(log_probs, data.y_test),
    }
    if ood_x is not None:
        out.update(ood_metrics(log_probs, method.predict_log_probs(model, ood_x, mode)))
    return out


def validation_metrics(method: Method, model: nn.Module, data, mode: str) -> dict:
    """The predictive ``mode``'s metrics on the validation split, keys prefixed ``val_`` (e.g.
    ``val_error``): what a choice among runs (a prior, a threshold) may look at; the test set
    is for reporting only."""
    found = method_metrics(method, model, data.x_val, data.y_val, mode, data.likelihood)
    return {f"val_{k}": v for k, v in found.items()}


def run_epoch(
    model: nn.Module,
    method: Method,
    optimizer,
    data: TensorData,
    batch_size: int,
    shuffle: torch.Generator,
    epoch: int,
    progress: bool = False,
    shard: Shard = SINGLE,
) -> dict:
    """One pass over the training set in a random order; returns mean loss and accuracy.
    Under DDP (distributed.py) this rank trains on its shard of every global minibatch."""
    model.train()
    n, x_all, y_all = data.n_train, data.x_train, data.y_train
    perm = torch.randperm(n, generator=shuffle).to(x_all.device)
    n_batches = math.ceil(n / batch_size)
    samples = method.train_samples
    loss_sum = torch.zeros((), device=x_all.device)
    correct = torch.zeros((), device=x_all.device, dtype=torch.long)
    bar = tqdm(
        range(n_batches),
        desc=f"epoch {epoch + 1}",
        leave=False,
        disable=None if progress else True,
        mininterval=0.5,
    )  # None: off when not a tty
    for i in bar:
        idx = shard.batch(perm[i * batch_size : (i + 1) * batch_size])
        x, y = x_all[idx], y_all[idx]
        step = StepInfo(epoch, i + 1, n_batches, n)
        optimizer.zero_grad(set_to_none=True)
        loss = None
        for _ in range(samples):  # Monte Carlo samples per step (1 for point estimates)
            logits = model(x)
            term = data.likelihood.nll(logits, y)
            for extra in method.loss_terms(model, step).values():
                term = term + extra
            loss = term if loss is None else loss + term
        if samples > 1:
            loss = loss / samples
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += data.likelihood.n_correct(logits.detach(), y)
        if progress and i % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    shard.sum(loss_sum)
    shard.sum(correct)
    mean_loss = (loss_sum / n).item()
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(
            f"training diverged at epoch {epoch + 1} (loss {mean_loss}); the last good "
            "checkpoint is kept — lower the learning rate or check the method settings"
        )
    return {"train_loss": mean_loss, "train_accuracy": correct.item() / n}


def _rng_state(shuffle: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


def fit(cfg: DictConfig, run_dir: Path, log=print) -> dict:
    """Train to the end (resuming if asked), write the checkpoint and metrics.json."""
    shard = setup_distributed(cfg.train.get("distributed", "auto"), resolve_device(cfg.device.name))
    device = shard.device
    data, method, spec, model = build(cfg, device, log)
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
        _set_rng_state(state["rng"], shuffle)
        history, start_epoch = state["history"], int(state["epoch"])
        log(f"resuming {run_dir.name} after epoch {start_epoch}")
    net = shard.wrap(model)  # DistributedDataParallel under torchrun, else the model itself
    if shard.is_writer:
        write_text(run_dir / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))

    def save(epoch: int) -> None:
        """Write the checkpoint after ``epoch`` epochs, atomically."""
        save_checkpoint(
            ckpt_path,
            {
                "format": "bbbprune-checkpoint-1",
                "method": method.name,
                "model_spec": spec,
                "model": model.state_dict(),
                "method_state": method.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch,
                "rng": _rng_state(shuffle),
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
                "wall_time_s": wall,
            }
        )
        if shard.is_writer:
            save(0)
    bar = tqdm(
        range(start_epoch, epochs),
        desc=run_dir.name[:40],
        initial=start_epoch,
        total=epochs,
        disable=None if cfg.train.progress and shard.is_writer else True,
    )
    for epoch in bar:
        t0 = time.perf_counter()
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
        wall = time.perf_counter() - t0
        val = method_metrics(method, model, data.x_val, data.y_val, "mean", data.likelihood)
        history.append(
            {
                "epoch": epoch + 1,
                **stats,
                "val_accuracy": val["accuracy"],
                "val_nll": val["nll"],
                "wall_time_s": wall,
            }
        )
        bar.set_postfix(loss=f"{stats['train_loss']:.4f}", val_acc=f"{val['accuracy']:.4f}")
        if not shard.is_writer:
            continue
        save(epoch + 1)

    test = {
        mode: method_metrics(method, model, data.x_test, data.y_test, mode, data.likelihood)
        for mode in method.prediction_modes
    }
    metrics = {
        "finished": True,
        "run": run_dir.name,
        **method.describe(),
        "dataset": data.name,
        "model": model_label(spec),
        "seed": int(cfg.seed),
        "scale": cfg.scale.name,
        "epochs": epochs,
        "n_train": data.n_train,
        "parameters": count_parameters(model),
        "prunable": sparsity(model)["prunable"],
        "history": history,
        "test": test,
        "wall_time_per_epoch_s": sum(h["wall_time_s"] for h in history) / len(history),
        "commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    shard.close()
    if not shard.is_writer:
        return metrics
    write_json(run_dir / METRICS, metrics)
    log(
        f"{run_dir.name}: test "
        + ", ".join(f"{m} error {t['error']:.2f}%" for m, t in test.items())
    )
    return metrics


def record_path(
    run_dir: Path, criterion: str, fraction: float, scope: str, finetune: int, mode: str
) -> Path:
    ft = f"_ft{finetune}" if finetune else ""
    return run_dir / RECORDS / f"{criterion}_{fraction:.4f}_{scope}{ft}_{mode}.json"


PRIMARY = "primary"  # in prune.criteria: the method's first (own) criterion, e.g. snr for bbb
NATIVE = "native"  # the criterion name of a method's own pruning rule (e.g. log α ≥ 3)


def evaluate_pruning(
    run_dir: Path, cfg: DictConfig, criteria, fractions, overwrite: bool = False, log=print
) -> list[dict]:
    """Prune the trained model of ``run_dir`` by each criterion at each fraction (no retraining,
    unless prune.finetune_epochs > 0) and write one JSON record per prediction mode. A method
    with its own pruning rule (``Method.native_masks``) also gets a record with criterion
    "native", whose fraction is the sparsity the rule reached. Each record holds the test metrics
    and the same on the validation split (``val_error``, ...). Existing records are kept unless
    ``overwrite`` or prune.overwrite is set."""
    run_cfg, method, model, state = load_run(run_dir)
    scope, finetune = cfg.prune.scope, int(cfg.prune.get("finetune_epochs", 0) or 0)
    overwrite = overwrite or bool(cfg.prune.get("overwrite", False))
    for c in criteria:
        if c not in SCORE_FUNCTIONS:
            raise UserError(f"unknown prune.criterion {c!r}; valid: {', '.join(SCORE_FUNCTIONS)}")
        if c not in method.criteria:
            raise UserError(
                f"criterion {c!r} does not apply to method {method.name}; "
                f"valid: {', '.join(method.criteria)}"
            )

    def done(criterion, fraction):
        return not overwrite and all(
            record_path(run_dir, criterion, fraction, scope, finetune, m).exists()
            for m in method.prediction_modes
        )

    def by_score(criterion, fraction):
        return lambda: prune_model(model, criterion, fraction, scope, seed=int(cfg.prune.seed))

    todo = [
        (c, f, by_score(c, f)) for c in criteria for f in map(float, fractions) if not done(c, f)
    ]
    if method.native_masks(model) is not None and not done(NATIVE, -1.0):
        todo.append((NATIVE, None, lambda: apply_masks(model, method.native_masks(model))))
    if not todo:
        return []
    device = resolve_device(cfg.device.name)
    model.to(device)
    data = load_tensors(run_cfg.dataset, device, log=log)
    ood_x = None
    if cfg.get("ood"):  # the test images of another dataset, preprocessed as the run's own
        ood_cfg = OmegaConf.merge(run_cfg.dataset, {"name": cfg.ood, "random_labels": False})
        ood_x = load_tensors(ood_cfg, device, log=log).x_test
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = read_json(run_dir / METRICS)
    # time spent beyond training the network this run started from (fine-tuning, a Laplace
    # fit); 0 for a network trained from scratch: it is the starting point
    extra_wall = (
        sum(h["wall_time_s"] for h in metrics["history"]) if run_cfg.train.get("init_from") else 0.0
    )
    written = []
    for criterion, fraction, apply in todo:
        apply_masks(model, None)
        model.load_state_dict(trained)
        apply()
        if finetune:
            finetune_model(
                model, method, run_cfg, data, finetune, float(cfg.prune.finetune_lr_scale)
            )
        sp = sparsity(model)
        key = -1.0 if fraction is None else fraction  # the native rule's records: one file each
        # the architecture left after removing dead neurons/filters (structured.shrink)
        kept_widths = removed_units(model)["kept_widths"] if fraction is None else None
        # weights, MACs (and, if prune.measure_speed, latency) of dense vs rebuilt network
        structure = (
            compression_summary(
                model, data.x_test[:512], bool(cfg.prune.get("measure_speed", False))
            )
            if fraction is None
            else {}
        )
        exported = (
            export_measurements(
                model, "auto", data.x_test[:256], int(cfg.prune.latency_repeats), (1, 256)
            )
            if cfg.prune.get("measure_export")
            else {}
        )
        if cfg.prune.get("measure_shrink"):  # bytes and latency of deploy.shrink(model)
            from .deploy.shrink import shrink_measurements

            exported = {
                **exported,
                **shrink_measurements(model, data.x_test[:256], int(cfg.prune.latency_repeats)),
            }
        for mode in method.prediction_modes:
            result = uncertainty_metrics(method, model, data, ood_x, mode)
            result.update(validation_metrics(method, model, data, mode))
            rec = {
                "run": run_dir.name,
                "method": metrics["method"],
                "dataset": metrics["dataset"],
                "model": metrics["model"],
                "seed": metrics["seed"],
                "scale": metrics["scale"],
                "epochs": metrics["epochs"],
                "criterion": criterion,
                "fraction": sp["sparsity"] if fraction is None else fraction,
                "scope": scope,
                "finetune_epochs": finetune,
                "extra_wall_s": extra_wall,
                "prediction": mode,
                "samples": method.eval_samples if mode == "sampled" else 1,
                "achieved_sparsity": sp["sparsity"],
                "per_layer_sparsity": sp["per_layer"],
                "prunable": sp["prunable"],
                "kept": sp["prunable"] - sp["removed"],
                "compression": sp["prunable"] / max(sp["prunable"] - sp["removed"], 1),
                "kept_widths": kept_widths,
                **structure,
                **result,
                **exported,
                "ood_dataset": cfg.get("ood"),
                "commit": git_commit(),
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
            write_json(record_path(run_dir, criterion, key, scope, finetune, mode), rec)
            written.append(rec)
    log(f"{run_dir.name}: {len(written)} pruning records written")
    return written


def finetune_model(model, method, cfg, data, epochs: int, lr_scale: float) -> None:
    """Retrain a pruned model for a few epochs with its masks fixed (Han et al. 2015 use 1/10 of
    the learning rate); masked weights stay exactly zero because the mask multiplies them."""
    factory = instantiate(cfg.method.optimizer)
    factory.keywords["lr"] = factory.keywords.get("lr", 1e-3) * lr_scale
    optimizer = method.make_optimizer(model, factory)
    shuffle = torch.Generator().manual_seed(int(cfg.seed) + 2)
    for epoch in range(epochs):
        run_epoch(model, method, optimizer, data, int(cfg.train.batch_size), shuffle, epoch)


def train(cfg: DictConfig, log=print) -> Path:
    """Train (or skip, if already finished) and evaluate the configured pruning levels.

    Returns the run directory."""
    validate_config(cfg)
    run_dir = run_directory(cfg)
    metrics_file = run_dir / METRICS
    if metrics_file.exists() and read_json(metrics_file).get("finished") and not cfg.train.force:
        log(f"{run_dir.name}: already trained, not training again")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        fit(cfg, run_dir, log)
    if not is_main_process():  # DDP: rank 0 alone evaluates and writes the pruning records
        return run_dir
    method = build_method(cfg.method)
    criteria = cfg.prune.criteria if cfg.prune.get("criteria") else method.criteria
    criteria = [method.criteria[0] if c == PRIMARY else c for c in criteria]
    evaluate_pruning(run_dir, cfg, list(criteria), list(cfg.prune.fractions), log=log)
    return run_dir
