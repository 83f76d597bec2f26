"""The common trainer end to end on tiny data: records, determinism, resume, divergence, bad
checkpoints, pruning without retraining, fine-tuning with fixed masks."""

from __future__ import annotations

import json

import pytest
import torch

import bbbprune.run.loop as train_mod
import bbbprune.run.prune_run as prune_mod
from bbbprune.errors import UserError
from bbbprune.machine import machine_description
from bbbprune.run.checkpoints import load_run
from bbbprune.run.epoch import TrainingDiverged
from bbbprune.run.identity import run_directory
from bbbprune.run.loop import train
from bbbprune.run.prune_run import prune_run
from bbbprune.storage import load_checkpoint


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_train_writes_run_directory_and_records(smoke_cfg):
    cfg = smoke_cfg("method=sgd", "train.epochs=2")
    run_dir = train(cfg, log=lambda *_: None)
    m = _metrics(run_dir)
    assert m["finished"] and m["method"] == "sgd" and m["dataset"] == "mnist"
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    for key in ("train_loss", "val_accuracy", "wall_time_s"):
        assert all(key in h for h in m["history"])
    assert set(m["test"]["mean"]) == {"accuracy", "error", "nll"}
    assert m["test"]["mean"]["error"] == pytest.approx(100 * (1 - m["test"]["mean"]["accuracy"]))
    assert m["parameters"] == (784 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert {"model", "optimizer", "epoch", "rng", "config", "history"} <= set(state)
    records = sorted((run_dir / "records").glob("*.json"))
    # smoke scale: fractions 0, 0.5, 0.9 × criteria magnitude, random × prediction mean
    assert len(records) == 6
    rec = json.loads((run_dir / "records" / "magnitude_0.9000_global_mean.json").read_text())
    for key in (
        "method",
        "dataset",
        "model",
        "seed",
        "criterion",
        "fraction",
        "achieved_sparsity",
        "error",
        "accuracy",
    ):
        assert key in rec
    assert rec["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)


def test_same_seed_same_numbers(smoke_cfg, tmp_path):
    a = _metrics(train(smoke_cfg("method=bbb", "train.epochs=2"), log=lambda *_: None))
    b = _metrics(
        train(
            smoke_cfg(
                "method=bbb",
                "train.epochs=2",
                "train.force=true",
                f"paths.runs={tmp_path / 'other'}",
            ),
            log=lambda *_: None,
        )
    )
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert a["test"] == b["test"]


@pytest.mark.parametrize("method", ["dropout", "bbb"])
def test_resume_gives_identical_metrics(smoke_cfg, tmp_path, monkeypatch, method):
    """Interrupt after epoch 2 of 3, resume, and compare with an uninterrupted run."""
    full = _metrics(
        train(
            smoke_cfg(f"method={method}", "train.epochs=3", f"paths.runs={tmp_path / 'full'}"),
            log=lambda *_: None,
        )
    )
    real_epoch = train_mod.run_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    cfg = smoke_cfg(f"method={method}", "train.epochs=3", f"paths.runs={tmp_path / 'cut'}")
    monkeypatch.setattr(train_mod, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda *_: None)
    monkeypatch.setattr(train_mod, "run_epoch", real_epoch)
    assert load_checkpoint(run_directory(cfg) / "checkpoint.pt")["epoch"] == 2
    resumed_cfg = smoke_cfg(
        f"method={method}", "train.epochs=3", f"paths.runs={tmp_path / 'cut'}", "train.resume=true"
    )
    resumed = _metrics(train(resumed_cfg, log=lambda *_: None))
    strip = [{k: v for k, v in h.items() if k != "wall_time_s"} for h in full["history"]]
    assert [{k: v for k, v in h.items() if k != "wall_time_s"} for h in resumed["history"]] == strip
    assert resumed["test"] == full["test"]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(smoke_cfg):
    cfg = smoke_cfg("method=sgd", "train.epochs=1")
    run_dir = train(cfg, log=lambda *_: None)
    good = load_checkpoint(run_dir / "checkpoint.pt")
    bad = smoke_cfg("method=sgd", "train.epochs=1", "method.optimizer.lr=1e30", "seed=5")
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1"):
        train(bad, log=lambda *_: None)
    assert not (run_directory(bad) / "checkpoint.pt").exists()
    assert torch.equal(
        load_checkpoint(run_dir / "checkpoint.pt")["model"]["net.1.weight"],
        good["model"]["net.1.weight"],
    )


def test_checkpoint_of_another_method_is_refused(smoke_cfg):
    sgd_dir = train(smoke_cfg("method=sgd"), log=lambda *_: None)
    cfg = smoke_cfg("method=bbb", "train.resume=true")
    target = run_directory(cfg)
    target.mkdir(parents=True)
    (target / "checkpoint.pt").write_bytes((sgd_dir / "checkpoint.pt").read_bytes())
    with pytest.raises(UserError, match="holds method=sgd .* not method=bbb"):
        train(cfg, log=lambda *_: None)


def test_truncated_checkpoint_is_never_loaded(smoke_cfg):
    run_dir = train(smoke_cfg("method=sgd"), log=lambda *_: None)
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="damaged"):
        load_run(run_dir)


def test_finished_run_is_not_trained_again(smoke_cfg, monkeypatch):
    cfg = smoke_cfg("method=sgd")
    train(cfg, log=lambda *_: None)
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: pytest.fail("trained again"))
    train(cfg, log=lambda *_: None)


def test_prune_command_writes_a_record_with_the_exact_fraction(smoke_cfg):
    run_dir = train(smoke_cfg("method=bbb"), log=lambda *_: None)
    cfg = smoke_cfg("prune.criterion=snr", "prune.fraction=0.75")
    recs = prune_run(run_dir, cfg, ["snr"], [0.75], overwrite=True, log=lambda *_: None)
    assert {r["prediction"] for r in recs} == {"mean", "sampled"}
    _, _, model, _ = load_run(run_dir)
    prunable = sum(m.weight_mu.numel() for m in model.modules() if hasattr(m, "weight_mu"))
    assert all(r["achieved_sparsity"] == round(0.75 * prunable) / prunable for r in recs)
    with pytest.raises(UserError, match="does not apply to method sgd"):
        sgd_dir = train(smoke_cfg("method=sgd"), log=lambda *_: None)
        prune_run(sgd_dir, cfg, ["snr"], [0.5], log=lambda *_: None)


def test_finetuning_keeps_pruned_weights_at_zero(smoke_cfg):
    run_dir = train(smoke_cfg("method=sgd"), log=lambda *_: None)
    cfg = smoke_cfg("prune.finetune_epochs=1")
    real = prune_mod.finetune_model
    seen = {}

    def spy(model, *args):
        real(model, *args)
        seen["masked_nonzero"] = sum(
            int((m.masked(m.weight)[m.weight_mask == 0] != 0).sum())
            for m in model.modules()
            if getattr(m, "weight_mask", None) is not None
        )

    prune_mod.finetune_model = spy
    try:
        recs = prune_run(run_dir, cfg, ["magnitude"], [0.9], log=lambda *_: None)
    finally:
        prune_mod.finetune_model = real
    assert seen["masked_nonzero"] == 0
    assert recs[0]["finetune_epochs"] == 1 and recs[0]["achieved_sparsity"] == pytest.approx(
        0.9, abs=1e-3
    )


def test_native_record_has_kept_architecture_and_measured_speedups(smoke_cfg):
    """A method with its own pruning rule gets a "native" record: its fraction is the sparsity
    the rule reached (recounted here from the masks), with the architecture of the rebuilt
    network and the latency ratio masked/rebuilt measured at batch 1 and 256."""
    run_dir = train(
        smoke_cfg("method=svd", "model=lenet300", "prune.measure_speed=true"), log=lambda *_: None
    )
    (path,) = (run_dir / "records").glob("native_*_mean.json")
    rec = json.loads(path.read_text())
    _, method, model, _ = load_run(run_dir)
    masks = method.native_masks(model)
    removed = sum(int((m == 0).sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert rec["criterion"] == "native"
    assert rec["fraction"] == pytest.approx(removed / total)
    assert rec["kept_widths"][-1] == 10 and len(rec["kept_widths"]) == 4
    assert rec["speedup_b1"] > 0 and rec["speedup_b256"] > 0
    assert rec["rebuild_same_predictions"] and rec["weights_pruned"] <= rec["weights_dense"]


def test_records_carry_the_validation_error_and_are_kept_unless_overwritten(smoke_cfg):
    """Each record also holds the validation-split metrics (what a choice among runs may use):
    at fraction 0 with the mean weights they equal the trainer's own last validation accuracy.
    A second evaluation keeps existing records; prune.overwrite=true writes them again."""
    cfg = smoke_cfg("method=sgd", "train.epochs=2")
    run_dir = train(cfg, log=lambda *_: None)
    path = run_dir / "records" / "magnitude_0.0000_global_mean.json"
    rec = json.loads(path.read_text())
    last_val = _metrics(run_dir)["history"][-1]["val_accuracy"]
    assert rec["val_accuracy"] == pytest.approx(last_val)
    assert rec["val_error"] == pytest.approx(100 * (1 - last_val))
    assert prune_run(run_dir, cfg, ["magnitude"], [0.0], log=lambda *_: None) == []
    again = prune_run(
        run_dir, smoke_cfg("prune.overwrite=true"), ["magnitude"], [0.0], log=lambda *_: None
    )
    assert [r["val_error"] for r in again if r["prediction"] == "mean"] == [rec["val_error"]]


def test_validation_of_the_sampled_predictive_only_when_asked_and_test_numbers_unchanged(
    smoke_cfg,
):
    """By default (prune.validate=mean) only the mean-weights records carry validation metrics.
    prune.validate=all evaluates again just the pruning levels whose records lack them, and
    because the test split is evaluated first under each record's seed, their test numbers stay
    the same."""
    cfg = smoke_cfg("method=bbb", "train.epochs=1")
    run_dir = train(cfg, log=lambda *_: None)
    sampled = run_dir / "records" / "snr_0.5000_global_sampled.json"
    mean = run_dir / "records" / "snr_0.5000_global_mean.json"
    before = json.loads(sampled.read_text())
    assert "val_error" not in before and "val_error" in json.loads(mean.read_text())
    again = prune_run(
        run_dir, smoke_cfg("method=bbb", "prune.validate=all"), ["snr"], [0.5], log=lambda *_: None
    )
    assert sorted((r["fraction"], r["prediction"]) for r in again) == [
        (0.5, "mean"),
        (0.5, "sampled"),
    ]
    after = json.loads(sampled.read_text())
    assert "val_error" in after
    for key in ("error", "nll", "ece"):
        assert after[key] == before[key]


def test_predictions_none_writes_the_mean_weights_records_only(smoke_cfg):
    """prune.predictions=none (the extra seeds of a headline that reads the mean weights): every
    record is the mean-weights network's, none a sampled predictive's."""
    run_dir = train(
        smoke_cfg("method=bbb", "prune.predictions=none", "prune.fractions=[0.0,0.5]"),
        log=lambda *_: None,
    )
    names = sorted(p.name for p in (run_dir / "records").glob("*.json"))
    assert names and all(n.endswith("_mean.json") for n in names)
    assert "snr_0.5000_global_mean.json" in names


def test_runs_and_records_name_the_machine_that_computed_them(smoke_cfg):
    """metrics.json and every pruning record say which machine trained or evaluated them
    (bbbprune.machine): numbers repeat bit for bit on one machine, not across CPUs."""
    run_dir = train(smoke_cfg("method=sgd"), log=lambda *_: None)
    here = machine_description(torch.device("cpu"))
    assert json.loads((run_dir / "metrics.json").read_text())["machine"] == here
    records = list((run_dir / "records").glob("*.json"))
    assert records and all(json.loads(p.read_text())["machine"] == here for p in records)
