"""Pruning evaluation of a trained model: prune it by each criterion at each fraction (and by the
method's own rule), measure it, and write one record per prediction mode (the schema is
bbbprune.evaluation.records)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..deploy.complexity import compression_summary
from ..deploy.counting import deployed_counts
from ..deploy.export import export_measurements
from ..deploy.shrink import shrink_measurements
from ..deploy.structured import removed_units
from ..errors import UserError, check_choice
from ..methods import Method
from ..pruning.criteria import prune_model
from ..pruning.masking import apply_masks, sparsity
from ..pruning.registry import WEIGHT_CRITERIA
from ..storage import git_commit, read_json, write_json
from .controls import control_fields, control_jobs, is_control
from .predictive import uncertainty_metrics, validation_metrics
from .progress import EvalProgress, eval_subset
from .records import METRICS, NATIVE, pruning_record, record_path, record_seed

# prune.predictions: the criteria whose records get every prediction mode (sampled, ensemble, ...)
PREDICTIONS = {
    "all": lambda method: (*method.criteria, NATIVE),
    "primary": lambda method: (method.criteria[0], NATIVE),  # the method's own criterion
    "native": lambda method: (NATIVE,),  # the method's own rule only
    "none": lambda method: (),  # the mean weights only (e.g. the extra seeds of a headline)
}

# prune.validate: the prediction modes whose records also hold the validation split's metrics
# (val_error, ...). Choices read the mean weights' validation numbers; a choice that reads
# another mode's (blundell_prior_grid's sampled check) asks for all. The controls at matched
# sparsity are never validated: no choice reads them, and they are half of a Bayesian run's
# records. The test split comes first under a record's seed, so leaving validation out does
# not change the test numbers.
VALIDATE = {
    "mean": lambda mode: mode == "mean",
    "all": lambda mode: True,
}


def _cuda_devices(device) -> list[int]:
    return [device.index or 0] if torch.device(device).type == "cuda" else []


def check_criteria(method: Method, criteria) -> None:
    """Every criterion is registered and applies to ``method``; else a one-line error."""
    for c in criteria:
        if c not in WEIGHT_CRITERIA:
            raise UserError(f"unknown prune.criterion {c!r}; valid: {', '.join(WEIGHT_CRITERIA)}")
        if c not in method.criteria:
            raise UserError(
                f"criterion {c!r} does not apply to method {method.name}; "
                f"valid: {', '.join(method.criteria)}"
            )


def evaluate_pruning(
    run_dir: Path,
    method: Method,
    model: nn.Module,
    load_data: Callable,
    prune_cfg,
    criteria,
    fractions,
    ood_dataset: str | None = None,
    finetune: Callable | None = None,
    overwrite: bool = False,
    log=print,
    extra_wall_s: float = 0.0,
) -> list[dict]:
    """Prune the trained ``model`` of ``run_dir`` by each criterion at each fraction (no
    retraining, unless prune.finetune_epochs > 0: then ``finetune(model, epochs, lr_scale)``
    retrains it with its masks fixed) and write one JSON record per prediction mode. A method
    with its own pruning rule (``Method.native_masks``) also gets a record with criterion
    "native", whose fraction is the sparsity the rule reached. Each record holds the test metrics
    and, for the prediction modes prune.validate names (default: the mean weights), the same on
    the validation split (``val_error``, ...). Existing records are kept unless
    ``overwrite`` or prune.overwrite is set. ``load_data()`` returns the run's TensorData on the
    model's device and the test images of another dataset (``ood_dataset``) or None; it is
    called only when there is something to evaluate. ``extra_wall_s``: the run's time beyond
    training the network it started from (train.init_from), written to every record."""
    scope, epochs = prune_cfg.scope, int(prune_cfg.get("finetune_epochs", 0) or 0)
    overwrite = overwrite or bool(prune_cfg.get("overwrite", False))
    check_criteria(method, criteria)

    every_mode = PREDICTIONS[
        check_choice("prune.predictions", str(prune_cfg.get("predictions", "primary")), PREDICTIONS)
    ](method)

    def modes(criterion):
        """The prediction modes of ``criterion``'s records: every mode of the method for the
        criteria prune.predictions names, the mean weights only for the others and for the
        controls (a sampled predictive costs S passes each)."""
        return method.prediction_modes if criterion in every_mode else ("mean",)

    validated_mode = VALIDATE[
        check_choice("prune.validate", str(prune_cfg.get("validate", "mean")), VALIDATE)
    ]

    def validated(criterion, mode) -> bool:
        """Whether ``criterion``'s records of ``mode`` also get the validation split's metrics."""
        return validated_mode(mode) and not is_control(criterion)

    def written_already(path, criterion, mode) -> bool:
        """``path`` exists and holds the validation metrics if this evaluation asks for them."""
        return path.exists() and (not validated(criterion, mode) or "val_error" in read_json(path))

    def done(criterion, fraction):
        return not overwrite and all(
            written_already(
                record_path(run_dir, criterion, fraction, scope, epochs, m), criterion, m
            )
            for m in modes(criterion)
        )

    def by_score(criterion, fraction):
        return lambda: prune_model(model, criterion, fraction, scope, seed=int(prune_cfg.seed))

    todo = [
        (c, f, by_score(c, f), None)
        for c in criteria
        for f in map(float, fractions)
        if not done(c, f)
    ]
    todo += control_jobs(model, criteria, fractions, prune_cfg, done)  # Blalock et al. controls
    if method.native_masks(model) is not None and not done(NATIVE, -1.0):
        todo.append((NATIVE, None, lambda: apply_masks(model, method.native_masks(model)), None))
    if not todo:
        return []
    data, ood_x = load_data()
    data = eval_subset(data, prune_cfg.get("eval_subset"))  # smoke runs: the first n images
    if prune_cfg.get("eval_subset") and ood_x is not None:  # ... of the OOD test set too
        ood_x = ood_x[: int(prune_cfg.eval_subset)]
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = read_json(run_dir / METRICS)
    written = []
    commit = git_commit()
    for criterion, fraction, apply, reference in EvalProgress(run_dir.name, len(todo)).wrap(todo):
        apply_masks(model, None)
        model.load_state_dict(trained)
        apply()
        if epochs:
            finetune(model, epochs, float(prune_cfg.finetune_lr_scale))
        sp = sparsity(model)
        key = -1.0 if fraction is None else fraction  # the native rule's records: one file each
        # the architecture left after removing dead neurons/filters (structured.shrink)
        kept_widths = removed_units(model)["kept_widths"] if fraction is None else None
        # weights, MACs (and, if prune.measure_speed, latency) of dense vs rebuilt network
        structure = (
            compression_summary(
                model, data.x_test[:512], bool(prune_cfg.get("measure_speed", False))
            )
            if fraction is None
            else {}
        )
        counts = deployed_counts(model, tuple(data.x_test.shape[1:]))  # one rule, every record
        exported = (
            export_measurements(
                model, "auto", data.x_test[:256], int(prune_cfg.latency_repeats), (1, 256)
            )
            if prune_cfg.get("measure_export")
            else {}
        )
        if prune_cfg.get("measure_shrink"):  # size and latency of deploy.shrink(model)
            exported = {
                **exported,
                **shrink_measurements(model, data.x_test[:256], int(prune_cfg.latency_repeats)),
            }
        for mode in modes(criterion):
            # the sampled predictive draws from a generator seeded by the run and the record,
            # so evaluating a record again repeats its numbers
            seed = record_seed(run_dir.name, criterion, key, scope, mode)
            with torch.random.fork_rng(devices=_cuda_devices(data.x_test.device)):
                torch.manual_seed(seed)
                result = uncertainty_metrics(method, model, data, ood_x, mode)
                if validated(criterion, mode):
                    result.update(validation_metrics(method, model, data, mode))
            rec = pruning_record(
                run_dir.name,
                metrics,
                criterion=criterion,
                fraction=sp["sparsity"] if fraction is None else fraction,
                scope=scope,
                finetune_epochs=epochs,
                prediction=mode,
                samples=method.eval_samples if mode == "sampled" else 1,
                sparsity=sp,
                kept_widths=kept_widths,
                measured={
                    "extra_wall_s": extra_wall_s,
                    **counts,
                    **structure,
                    **result,
                    **exported,
                },
                ood_dataset=ood_dataset,
                commit=commit,
                device=data.x_test.device,
            )
            rec.update(control_fields(criterion, reference))
            rec.update(eval_seed=seed, eval_images=int(len(data.x_test)))
            write_json(record_path(run_dir, criterion, key, scope, epochs, mode), rec)
            written.append(rec)
    log(f"{run_dir.name}: {len(written)} pruning records written")
    return written
