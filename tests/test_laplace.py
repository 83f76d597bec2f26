"""method=laplace: a post-hoc Laplace approximation (laplace-torch) of a trained network, pruned
by |w|/σ; checked against the diagonal GGN of multinomial logistic regression by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bbbprune.errors import UserError
from bbbprune.evaluation.records import RECORDS
from bbbprune.layers.likelihoods import CATEGORICAL
from bbbprune.methods import LaplacePosterior
from bbbprune.run.loop import train


def _quiet(*_):
    return None


def test_diag_sigma_of_logistic_regression_matches_the_closed_form():
    """For logits f = Wx + b the GGN of the cross-entropy has diagonal entries
    Σ_n p_nk(1 − p_nk) x_nj² (weight W_kj) and Σ_n p_nk(1 − p_nk) (bias b_k), so
    σ_kj = (Σ_n p_nk(1 − p_nk) x_nj² + λ)^(−1/2)."""
    torch.manual_seed(0)
    method = LaplacePosterior("laplace", prior_precision=2.0, optimize_prior_precision=False)
    net = nn.Sequential(method.layer_factory().linear(5, 3))
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    data = SimpleNamespace(x_train=x, y_train=y, likelihood=CATEGORICAL)
    method.fit_posterior(net, data, batch_size=16)
    with torch.no_grad():
        p = torch.softmax(net(x), dim=-1)
    expected = ((p * (1 - p)).T @ x.square() + 2.0).rsqrt()
    assert torch.allclose(net[0].posterior_sigma, expected, rtol=1e-4)
    assert torch.equal(net[0].weight_sigma(), net[0].posterior_sigma)


def test_last_layer_leaves_the_prior_sigma_elsewhere_and_kron_runs():
    torch.manual_seed(0)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    data = SimpleNamespace(x_train=x, y_train=y, likelihood=CATEGORICAL)
    for structure in ("diag", "kron"):
        method = LaplacePosterior(
            "laplace",
            hessian_structure=structure,
            subset_of_weights="last_layer",
            prior_precision=4.0,
            optimize_prior_precision=False,
        )
        f = method.layer_factory()
        net = nn.Sequential(f.linear(6, 4), nn.ReLU(), f.linear(4, 3))
        method.fit_posterior(net, data, batch_size=10)
        assert torch.allclose(net[0].posterior_sigma, torch.full((4, 6), 0.5))
        last = net[2].posterior_sigma
        assert torch.isfinite(last).all() and (last > 0).all() and (last < 0.5).all()


def test_unfitted_sigma_is_refused():
    layer = LaplacePosterior("laplace").layer_factory().linear(3, 2)
    with pytest.raises(UserError, match="not been fitted"):
        layer.weight_sigma()


def test_laplace_runs_from_the_cli_config_on_a_trained_run(smoke_cfg):
    source = train(smoke_cfg("method=sgd", "prune.fractions=[0.5]"), log=_quiet)
    cfg = smoke_cfg(
        "method=laplace", "train.init_from=sgd", "prune.fractions=[0.0,0.9]", "prune.criteria=[snr]"
    )
    run_dir = train(cfg, log=_quiet)
    assert run_dir != source
    import json

    records = {p.name: json.loads(p.read_text()) for p in (run_dir / RECORDS).glob("*.json")}
    own = {name for name in records if name.startswith("snr_")}
    assert own == {"snr_0.0000_global_mean.json", "snr_0.9000_global_mean.json"}
    # the matched-sparsity controls (prune.controls) stand beside the pruned snr record
    controls = {name for name in records if "-vs-snr_" in name}
    assert controls == {f"{c}-vs-snr_0.9000_global_mean.json" for c in cfg.prune.controls}
    rec = records["snr_0.9000_global_mean.json"]
    assert rec["kept"] == rec["prunable"] - round(0.9 * rec["prunable"])
    assert rec["extra_wall_s"] > 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 0 and metrics["history"][0]["prior_precision"] > 0
    # it trained nothing: the unpruned mean network is the SGD network
    src = json.loads((source / "metrics.json").read_text())
    assert records["snr_0.0000_global_mean.json"]["error"] == pytest.approx(
        src["test"]["mean"]["error"]
    )


def test_laplace_without_a_trained_network_is_one_clear_error(smoke_cfg):
    with pytest.raises(UserError, match="trains nothing: give train.init_from"):
        train(smoke_cfg("method=laplace"), log=_quiet)
