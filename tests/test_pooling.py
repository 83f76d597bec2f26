"""2×2 max pooling for evaluation (bbbprune.nets.pooling) gives max_pool2d's values: on
random data, on windows full of ties, with NaN, on odd sizes, and through a whole LeNet-5, whose
logits must be equal to the last bit. Training keeps max_pool2d and its gradient."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bbbprune.methods import BayesByBackprop, Deterministic
from bbbprune.nets.models import build_model
from bbbprune.nets.pooling import MaxPool2x2, max_pool_2x2


@pytest.mark.parametrize("shape", [(3, 4, 24, 24), (2, 5, 7, 9), (1, 1, 2, 2), (4, 50, 8, 8)])
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_values_equal_max_pool2d(shape, kind):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    if kind == "ties":  # small integers: most windows hold their maximum more than once
        x = torch.randint(-2, 3, shape, generator=g).float()
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))


def test_a_nan_in_a_window_gives_nan_as_max_pool2d_does():
    x = torch.randn(1, 2, 6, 6)
    x[0, 0, 2, 3] = float("nan")  # window (1, 1) of channel 0
    ours, ref = max_pool_2x2(x), F.max_pool2d(x, 2)
    assert ours.isnan().equal(ref.isnan()) and ours.isnan().sum() == 1
    assert torch.equal(ours.nan_to_num(7.0), ref.nan_to_num(7.0))


def test_it_is_an_nn_maxpool2d_of_kernel_and_stride_2():
    pool = MaxPool2x2()
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2


def test_training_keeps_max_pool2d_and_its_gradient():
    x = torch.randint(-2, 3, (2, 3, 8, 8)).float()  # ties: the gradient goes to one entry each
    ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(2, 3, 4, 4)
    MaxPool2x2()(ours).backward(g)
    F.max_pool2d(ref, 2).backward(g)
    assert torch.equal(ours.grad, ref.grad)


MIXTURE = {"kind": "scale_mixture", "pi": 0.5, "neg_log_sigma1": 0, "neg_log_sigma2": 6}


@pytest.mark.parametrize("method", [Deterministic("sgd"), BayesByBackprop("bbb", MIXTURE)])
def test_a_lenet5_evaluates_to_the_same_logits_as_with_max_pool2d(method):
    torch.manual_seed(0)
    spec = {
        "name": "lenet5",
        "conv": [20, 50],
        "fc": 500,
        "input_shape": [1, 28, 28],
        "n_classes": 10,
    }
    model = build_model(spec, method.layer_factory()).eval()
    plain = copy.deepcopy(model)  # the same weights, torch's own pooling
    plain.features = nn.Sequential(
        *[nn.MaxPool2d(2) if isinstance(m, MaxPool2x2) else m for m in plain.features]
    )
    x = torch.relu(torch.randn(64, 1, 28, 28))  # image-like: many zero pixels
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
