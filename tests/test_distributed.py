"""DistributedDataParallel under torchrun: 2 CPU processes (gloo) train a LeNet-5 and end where
one process with the same global batch ends; only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import compose_config, smoke_overrides
from hydra.utils import instantiate

from bbbprune.errors import UserError
from bbbprune.run.distributed import Shard, setup
from bbbprune.run.epoch import run_epoch
from bbbprune.run.loop import build, train


def test_shards_partition_every_minibatch():
    idx = torch.tensor([7, 3, 9, 0, 4, 8, 1])
    shards = [Shard(rank=r, world_size=3).batch(idx) for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == sorted(idx.tolist())
    assert [len(s) for s in shards] == [3, 2, 2]
    assert torch.equal(Shard().batch(idx), idx)


class _UnreducedShard(Shard):
    """A rank's view without a process group: sums stay local."""

    def sum(self, tensor):
        return tensor


def test_run_epoch_trains_on_this_ranks_shard_only(smoke_cfg):
    """250 training examples in global batches of 32: rank 1 of 2 sees 16 of each full batch
    and 13 of the last 26."""
    cfg = smoke_cfg("method=sgd")
    data, method, _, model = build(cfg, torch.device("cpu"), log=lambda *_: None)
    seen = []
    model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    optimizer = method.make_optimizer(model, instantiate(cfg.method.optimizer))
    shard = _UnreducedShard(rank=1, world_size=2)
    run_epoch(model, method, optimizer, data, 32, torch.Generator().manual_seed(0), 0, shard=shard)
    assert data.n_train == 250 and seen == [16] * 7 + [13]


def test_distributed_modes_are_checked(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match="torchrun"):
        setup("true", torch.device("cpu"))
    with pytest.raises(UserError, match="valid: auto, true, false"):
        setup("maybe", torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="train.distributed=false"):
        setup("false", torch.device("cpu"))


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_one_process(tmp_path, data_root):
    """Global batch 32 → 16 examples per rank; DDP averages the two shard gradients, which is
    the global-batch gradient (n_train = 250: the last batch of 26 splits 13/13 too). Plain
    training (sgd) has no per-example noise, so the runs agree up to float summation order."""
    common = [o for o in smoke_overrides(tmp_path, data_root) if not o.startswith("model.")]
    common += [
        "model=lenet5",
        "model.conv=[4,6]",
        "model.fc=32",
        "train.epochs=2",
        "prune.fractions=[0.5]",
    ]
    ddp_runs, one_runs = tmp_path / "ddp", tmp_path / "one"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "bbbprune.cli",
            "train",
            *common,
            f"paths.runs={ddp_runs}",
            "train.distributed=true",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    one_dir = train(compose_config(common + [f"paths.runs={one_runs}"]), log=lambda *_: None)
    (ddp_dir,) = [p for p in ddp_runs.iterdir() if p.name != "hydra"]
    assert ddp_dir.name == one_dir.name  # same run identity: DDP is how, not what, is trained

    ddp_m = json.loads((ddp_dir / "metrics.json").read_text())
    one_m = json.loads((one_dir / "metrics.json").read_text())
    for a, b in zip(ddp_m["history"], one_m["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_accuracy"] == b["train_accuracy"]
        assert a["val_nll"] == pytest.approx(b["val_nll"], rel=1e-4)
    assert ddp_m["test"]["mean"]["nll"] == pytest.approx(one_m["test"]["mean"]["nll"], rel=1e-4)

    ddp_w = torch.load(ddp_dir / "checkpoint.pt", weights_only=True)["model"]
    one_w = torch.load(one_dir / "checkpoint.pt", weights_only=True)["model"]
    assert ddp_w.keys() == one_w.keys()  # rank 0 saved the plain model, not the DDP wrapper
    for k in one_w:
        torch.testing.assert_close(ddp_w[k], one_w[k], rtol=1e-4, atol=1e-5)
    # pruning records written once, by rank 0
    assert sorted(p.name for p in (ddp_dir / "records").iterdir()) == sorted(
        p.name for p in (one_dir / "records").iterdir()
    )
