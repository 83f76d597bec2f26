"""Pruning a finished run: load its model and data, evaluate every pruning level
(bbbprune.evaluation.pruning) and write the records."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..data.tensors import load_tensors
from ..evaluation.analyses import PrunedRun, write_analyses
from ..evaluation.pruning import check_criteria, evaluate_pruning
from ..evaluation.records import METRICS, analyses_for
from ..storage import read_json
from .checkpoints import load_run
from .distributed import resolve_device
from .finetune import finetune_model

PRIMARY = "primary"  # in prune.criteria: the method's first (own) criterion, e.g. snr for bbb


def prune_run(
    run_dir: Path, cfg: DictConfig, criteria, fractions, overwrite: bool = False, log=print
) -> list[dict]:
    """Prune the trained model of ``run_dir`` by each criterion at each fraction (settings in
    ``cfg.prune``; ``cfg.ood``: a dataset whose test images measure out-of-distribution
    detection) and write its pruning records; then write the analyses its experiment's table
    asks for (new ones, or all again when records were written). Returns the records written."""
    run_cfg, method, model, _ = load_run(run_dir)
    criteria = [method.criteria[0] if c == PRIMARY else c for c in criteria]
    check_criteria(method, criteria)
    device = resolve_device(cfg.device.name)
    model.to(device)
    loaded = {}

    def load_data():
        if not loaded:
            loaded["data"] = load_tensors(run_cfg.dataset, device, log=log)
            loaded["ood_x"] = None
            if cfg.get("ood"):  # another dataset's test images, preprocessed as the run's own
                ood_cfg = OmegaConf.merge(
                    run_cfg.dataset, {"name": cfg.ood, "random_labels": False}
                )
                loaded["ood_x"] = load_tensors(ood_cfg, device, log=log).x_test
        return loaded["data"], loaded["ood_x"]

    def finetune(pruned, epochs: int, lr_scale: float) -> None:
        finetune_model(pruned, method, run_cfg, load_data()[0], epochs, lr_scale)

    trained = {k: v.clone() for k, v in model.state_dict().items()}
    # time spent beyond training the network this run started from (fine-tuning, a Laplace
    # fit); 0 for a network trained from scratch: it is the starting point
    extra_wall = (
        sum(h["wall_time_s"] for h in read_json(Path(run_dir) / METRICS)["history"])
        if run_cfg.train.get("init_from")
        else 0.0
    )
    records = evaluate_pruning(
        Path(run_dir),
        method,
        model,
        load_data,
        cfg.prune,
        criteria,
        fractions,
        ood_dataset=cfg.get("ood"),
        finetune=finetune,
        overwrite=overwrite,
        log=log,
        extra_wall_s=extra_wall,
    )
    # what the experiment's table shows beyond the records, from the trained (unpruned) model
    model.load_state_dict(trained)
    run = PrunedRun(Path(run_dir), run_cfg, method, model, lambda: load_data()[0])
    names = analyses_for(cfg.get("table") or run_cfg.get("table"))
    write_analyses(run, names, overwrite=overwrite or bool(records), log=log)
    return records
