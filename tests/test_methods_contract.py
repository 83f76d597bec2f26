"""One contract for every method: shapes, KL ≥ 0, exact pruned fraction, save/load round trip."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import compose_config

from bbbprune.layers.likelihoods import CATEGORICAL
from bbbprune.layers.masked import prunable_layers
from bbbprune.methods import StepInfo, build_method
from bbbprune.nets.models import build_model
from bbbprune.pruning.criteria import prune_model
from bbbprune.pruning.masking import sparsity

# every method config: the methods register themselves through their config files (_target_)
METHODS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "method").glob("*.yaml")
)
MODELS = {
    "mlp": {"name": "mlp", "hidden": [16, 8]},
    "lenet5": {"name": "lenet5", "conv": [4, 6], "fc": 12},
}


def _setup(method_name, model_name):
    cfg = compose_config([f"method={method_name}"])
    method = build_method(cfg.method)
    spec = dict(MODELS[model_name], input_shape=[1, 28, 28], n_classes=10, dropout=method.dropout)
    torch.manual_seed(0)
    return method, build_model(spec, method.layer_factory()), spec


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("method_name", METHODS)
def test_method_contract(method_name, model_name):
    method, model, spec = _setup(method_name, model_name)
    x, y = torch.rand(5, 1, 28, 28), torch.randint(0, 10, (5,))
    model.train()
    logits = model(x)
    assert logits.shape == (5, 10)
    # epoch 12: Sparse VD's KL warm-up has started, so its KL term is really evaluated
    terms = method.loss_terms(model, StepInfo(12, 1, 4, 100))
    for value in terms.values():
        assert value.ndim == 0 and torch.isfinite(value)
    if method_name in ("ard", "ssvi"):  # closed-form KLs are true KLs: never negative
        assert terms["kl"].item() >= 0
    if method_name == "bbb":  # the MC estimate averages to KL ≥ 0
        estimates = []
        for _ in range(200):
            model(x)
            estimates.append(method.loss_terms(model, StepInfo(12, 1, 4, 100))["kl"].item())
        assert sum(estimates) / len(estimates) >= 0
    loss = torch.nn.functional.cross_entropy(logits, y) + sum(terms.values(), torch.zeros(()))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    if not method.trains:  # a post-hoc method (laplace) fits its posterior before pruning
        data = SimpleNamespace(x_train=x, y_train=y, likelihood=CATEGORICAL)
        method.fit_posterior(model, data, batch_size=5)
        for layer in prunable_layers(model).values():
            sigma = layer.weight_sigma()
            assert torch.isfinite(sigma).all() and (sigma > 0).all()

    criterion = method.criteria[0]
    prune_model(model, criterion, 0.75)
    s = sparsity(model)
    assert s["removed"] == round(0.75 * s["prunable"])

    buf = io.BytesIO()
    model.eval()
    out = model(x)
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    method2, fresh, _ = _setup(method_name, model_name)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh.eval()
    assert torch.equal(fresh(x), out)  # masks travel with the state dict
