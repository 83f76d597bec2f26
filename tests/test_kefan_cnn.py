"""EM-MCMC on CNNs end to end: a tiny ResNet-20 on generated CIFAR-format batches removes whole
filters while it trains, and the physically smaller rebuild computes what the masked net does."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config

from bbbprune.data.generated_cifar import write_generated_cifar
from bbbprune.data.registry import provision
from bbbprune.deploy.structured import shrink
from bbbprune.deploy.structured_resnet import SlimResNet
from bbbprune.run.checkpoints import load_run
from bbbprune.run.loop import train
from bbbprune.storage import read_json


def kefan_cifar_cfg(tmp_path, *extra):
    root = tmp_path / "cifar"
    write_generated_cifar(root, per_batch=48, n_test=64, seed=0)
    return compose_config(
        [
            "experiment=kefan_cifar",
            "scale=smoke",
            "device=cpu",
            f"paths.runs={tmp_path / 'runs'}",
            f"paths.results={tmp_path / 'results'}",
            f"dataset.root={root}",
            "dataset.sources=[]",
            "dataset.val_size=40",
            "dataset.train_subset=null",
            "train.progress=false",
            "train.batch_size=50",
            "model.widths=[8,16,32]",
            *extra,
        ]
    )


def test_tiny_resnet20_emmcmc_run_removes_filters_and_rebuilds_smaller(tmp_path):
    # 200 images: decays scaled up so that spike and slab separate within 3 epochs (N ε matters)
    cfg = kefan_cifar_cfg(
        tmp_path,
        "train.epochs=3",
        "method.cycles=1",
        "method.em_start=1",
        "method.slab_decay=5e-2",
        "method.spike_decay=5",
        "method.prune_threshold=1e3",
    )
    run_dir = train(cfg, log=lambda *_: None)
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["model"] == "resnet20-8-16-32"
    assert sum(h.get("em_removed_groups", 0) for h in metrics["history"]) > 0
    (rec_file,) = [p for p in (run_dir / "records").glob("native*_mean.json")]
    rec = read_json(rec_file)
    assert 0 < rec["channel_sparsity"] < 1
    assert rec["filters_pruned"] < rec["filters_dense"] == 8 + 6 * 8 + 6 * 16 + 6 * 32
    assert rec["macs_pruned"] < rec["macs_dense"]
    assert rec["weights_pruned"] < rec["weights_dense"]
    assert rec["rebuild_max_abs_diff"] < 1e-4 and rec["rebuild_same_predictions"]
    # the same from the saved run: removed filters are exact zeros, and the rebuild matches
    _, method, model, _ = load_run(run_dir)
    model.eval()
    small = shrink(model)
    assert isinstance(small, SlimResNet)
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)
    removed = 0
    for layer in model.modules():
        if getattr(layer, "weight_mask", None) is not None and layer.weight.dim() == 4:
            gone = layer.weight_mask.flatten(1).amax(1) == 0
            assert torch.all(layer.weight[gone] == 0)
            removed += int(gone.sum())
    # every filter the method removed is gone from the rebuild (which may drop a few more:
    # conv1 filters nobody reads once a block's conv2 is gone, and the reverse)
    assert 0 < removed <= rec["filters_dense"] - rec["filters_pruned"]


def test_generated_source_provisions_cifar_format_files(tmp_path):
    folder = provision("cifar10", tmp_path, ("generated",), verify_files=False, log=lambda *_: None)
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(("_1", "batch"))) == [
        "data_batch_1",
        "test_batch",
    ]
    assert (folder / "GENERATED.txt").exists()


@pytest.mark.parametrize("name", ["kefan_lenet5", "kefan_cifar", "kefan_cifar_paper"])
def test_kefan_experiments_compose(name):
    cfg = compose_config([f"experiment={name}"])
    assert cfg.method.name == "emmcmc" and cfg.table.name == name
    assert list(cfg.prune.fractions) == [] and "measure_speed" in cfg.prune
