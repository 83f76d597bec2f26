"""train.init_from: a run starts from another run's trained weights (Molchanov et al. train
Sparse VD on LeNet-5 from a pretrained network)."""

from __future__ import annotations

import pytest
import torch

from bbbprune.errors import UserError
from bbbprune.layers.predict import predict_outputs
from bbbprune.run.checkpoints import load_run
from bbbprune.run.identity import run_directory, source_run_directory
from bbbprune.run.init_from import initialise_from_run
from bbbprune.run.loop import build, train


def _quiet(*_):
    return None


@pytest.mark.parametrize("method", ["svd", "bbb"])
def test_initialised_network_computes_what_the_source_computes(smoke_cfg, method):
    """Copying w into θ (Sparse VD) or μ (BBB) makes the mean-weight pass equal the source's."""
    source_dir = train(smoke_cfg("method=sgd"), log=_quiet)
    _, _, source, _ = load_run(source_dir)
    cfg = smoke_cfg(f"method={method}", "train.init_from=sgd")
    data, _, _, model = build(cfg, torch.device("cpu"), log=_quiet)
    x = data.x_test[:20]
    expected = predict_outputs(source, x, "mean")
    assert torch.allclose(predict_outputs(model, x, "mean"), expected, atol=1e-6)


def test_method_name_names_the_same_experiment_run_of_that_method(smoke_cfg):
    cfg = smoke_cfg("method=svd", "train.init_from=sgd", "train.epochs=2")
    assert source_run_directory(cfg) == run_directory(smoke_cfg("method=sgd", "train.epochs=2"))


def test_init_from_enters_the_run_identity(smoke_cfg):
    plain = run_directory(smoke_cfg("method=svd"))
    assert run_directory(smoke_cfg("method=svd", "train.init_from=sgd")) != plain
    assert run_directory(smoke_cfg("method=svd", "train.init_from=null")) == plain


def test_unfinished_or_unknown_source_is_one_clear_error(smoke_cfg, tmp_path):
    cfg = smoke_cfg("method=svd", "train.init_from=sgd")
    with pytest.raises(UserError, match="has not finished training"):
        train(cfg, log=_quiet)
    with pytest.raises(UserError, match="neither a run directory nor a method config"):
        source_run_directory(smoke_cfg("method=svd", "train.init_from=nosuchmethod"))


def test_other_architecture_is_refused(smoke_cfg):
    source_dir = train(smoke_cfg("method=sgd"), log=_quiet)
    cfg = smoke_cfg("method=svd", "model.hidden=[16,16]")
    _, _, _, model = build(cfg, torch.device("cpu"), log=_quiet)
    with pytest.raises(UserError, match="weight shape"):
        initialise_from_run(model, source_dir)
