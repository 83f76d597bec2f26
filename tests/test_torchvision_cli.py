"""model=torchvision model.name=<any classifier>, train.init_from=<state-dict file>, and the
pretrained_to_pruned experiment end to end on tiny data."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bbbprune.errors import UserError
from bbbprune.layers.predict import predict_outputs
from bbbprune.nets.torchvision import torchvision_network
from bbbprune.run.identity import run_directory
from bbbprune.run.init_from import plain_network
from bbbprune.run.loop import build, train


def _quiet(*_):
    return None


@pytest.fixture
def tv_cfg(tmp_path, data_root):
    """Like smoke_cfg, for model=torchvision (which has no model.hidden)."""
    from conftest import compose_config, smoke_overrides

    base = [o for o in smoke_overrides(tmp_path, data_root) if not o.startswith("model.")]

    def make(*overrides):
        return compose_config(base + ["model=torchvision", *overrides])

    return make


def test_torchvision_stem_and_classifier_follow_the_dataset(tv_cfg):
    cfg = tv_cfg("model.name=resnet18", "method=bbb")
    data, method, spec, model = build(cfg, torch.device("cpu"), log=_quiet)
    assert spec["input_shape"] == [1, 28, 28] and spec["n_classes"] == 10
    assert model.conv1.weight_mu.shape == (64, 1, 7, 7) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.fc.out_features == 10
    with torch.no_grad():
        assert model.eval()(data.x_test[:2]).shape == (2, 10)
    assert "tv-resnet18" in run_directory(cfg).name
    with pytest.raises(UserError, match="unknown torchvision model 'resnet19'"):
        torchvision_network({**spec, "name": "resnet19"})


@pytest.mark.slow
def test_init_from_a_state_dict_file_gives_the_same_network(tv_cfg, tmp_path):
    cfg = tv_cfg("model.name=mobilenet_v2", "method=sgd")
    data, method, spec, _ = build(cfg, torch.device("cpu"), log=_quiet)
    torch.manual_seed(1)
    trained = plain_network(spec).eval()
    with torch.no_grad():  # batch-norm statistics that differ from the initial ones
        for m in trained.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "mobilenet.pt"
    torch.save({"state_dict": trained.state_dict()}, path)
    for name in ("bbb", "svd"):
        cfg = tv_cfg(
            "model.name=mobilenet_v2",
            f"method={name}",
            f"train.init_from={path}",
        )
        _, _, _, model = build(cfg, torch.device("cpu"), log=_quiet)
        x = data.x_test[:2]
        with torch.no_grad():
            assert torch.allclose(
                predict_outputs(model, x, "mean")[0], trained(x), atol=1e-4, rtol=0
            )
    # the file's bytes enter the run identity
    before = run_directory(cfg)
    assert before != run_directory(tv_cfg("model.name=mobilenet_v2", "method=svd"))
    trained.classifier[1].bias.data += 1
    torch.save(trained.state_dict(), path)
    assert run_directory(cfg) != before


def test_a_state_dict_of_another_architecture_names_the_first_key(smoke_cfg, tmp_path):
    cfg = smoke_cfg("method=sgd")  # mlp 784-32-16-10
    _, method, spec, _ = build(cfg, torch.device("cpu"), log=_quiet)
    other = plain_network({**spec, "hidden": [32, 8]})
    path = tmp_path / "other.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(UserError, match=r"key 'net\.3\.weight' has shape \(8, 32\)"):
        build(smoke_cfg("method=bbb", f"train.init_from={path}"), torch.device("cpu"), _quiet)
    extra = {**plain_network(spec).state_dict(), "head.weight": torch.zeros(1)}
    torch.save(extra, path)
    with pytest.raises(UserError, match="unexpected key 'head.weight'"):
        build(smoke_cfg("method=bbb", f"train.init_from={path}"), torch.device("cpu"), _quiet)
    with pytest.raises(UserError, match="no such file"):
        run_directory(smoke_cfg("method=bbb", f"train.init_from={tmp_path / 'missing.pt'}"))


def test_cli_mismatching_file_is_one_line_exit_2(tmp_path, data_root):
    from conftest import smoke_overrides

    path = tmp_path / "bad.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bbbprune.cli",
            "train",
            *smoke_overrides(tmp_path, data_root),
            "method=bbb",
            f"train.init_from={path}",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("bbbprune: error")]
    assert errors == [
        "bbbprune: error: train.init_from: bad.pt does not fit this model: key "
        "'net.1.weight' is missing"
    ]


@pytest.mark.slow
def test_pretrained_to_pruned_end_to_end(smoke_cfg, tmp_path):
    """Every arm of the experiment on tiny data; the table renders their records."""
    from bbbprune.report.gather import gather

    base = ["experiment=pretrained_to_pruned", "model.hidden=[32,16]", "prune.latency_repeats=2"]
    jobs = []
    for setup in ("mlp_mnist",):
        for arm in (
            ["method=sgd"],
            ["method=laplace"],
            # the experiment's MOPED arm and Sparse VD's long fine-tuning arm
            ["method=bbb", "method.name=bbb_moped", "+method.moped_delta=0.1"],
            ["method=svd", "finetune=long"],
        ):
            cfg = smoke_cfg(
                *base,
                f"pretrained_setup={setup}",
                *arm,
                "dataset.val_size=50",
                "dataset.train_subset=null",
            )
            train(cfg, log=_quiet)
            jobs.append(cfg)
    df, runs, missing = gather(jobs)
    assert not missing and len(runs) == 4
    arms = set(zip(df["method"], df["criterion"], df["prediction"], strict=True))
    assert arms >= {
        ("sgd", "magnitude", "mean"),
        ("sgd", "random", "mean"),
        ("laplace", "snr", "mean"),
        ("bbb_moped", "snr", "mean"),
        ("bbb_moped", "snr", "sampled"),
        ("svd", "log_alpha", "mean"),
    }
    assert (df["shrunk_params"] > 0).all() and (df["shrunk_max_abs_diff"] < 1e-4).all()
    pruned = df[df["fraction"] == 0.9]
    assert (pruned["achieved_sparsity"] - 0.9).abs().max() < 1e-3
    sgd = df[df["method"] == "sgd"]
    assert (sgd["extra_wall_s"] == 0).all()
    assert (df[df["method"] != "sgd"]["extra_wall_s"] > 0).all()
    long = jobs[-1]  # Sparse VD's long fine-tuning arm: k5_epochs at this scale
    assert long.train.epochs == long.k5_epochs[long.scale.name]
    assert set(df[df["method"] == "svd"]["epochs"]) == {long.train.epochs}
