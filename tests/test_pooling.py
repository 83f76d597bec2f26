"""2×2 max pooling (bbbprune.nets.pooling) gives max_pool2d's numbers. The C kernel gives its
outputs and gradients to the last bit (ties, zeros of both signs, NaN); the fallback without a C
compiler gives its values (NaN where a window holds one); a whole LeNet-5 gives the same logits
either way."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bbbprune.layers import fused
from bbbprune.methods import BayesByBackprop, Deterministic
from bbbprune.nets.models import build_model
from bbbprune.nets.pooling import MaxPool2x2, max_pool_2x2, with_torch_pooling

needs_kernel = pytest.mark.skipif(not fused.available(), reason="no C compiler")


def sample(shape, kind: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    if kind == "ties":  # small integers: most windows hold their maximum more than once
        x = torch.randint(-2, 3, shape, generator=g).float()
    if kind == "signed zeros":  # windows of +0 and -0 only: which one is taken shows in the bits
        x = torch.where(torch.rand(shape, generator=g) < 0.5, -0.0, 0.0)
    if kind == "nan":
        x[torch.rand(shape, generator=g) < 0.05] = float("nan")
    return x


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)


@needs_kernel
@pytest.mark.parametrize("shape", [(3, 4, 24, 24), (4, 50, 8, 8), (2, 3, 6, 1030), (1, 1, 2, 2)])
@pytest.mark.parametrize("kind", ["normal", "ties", "signed zeros", "nan"])
def test_the_kernel_gives_max_pool2d_outputs_and_gradients_to_the_bit(shape, kind):
    x = sample(shape, kind)
    ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_ref = MaxPool2x2()(ours), F.max_pool2d(ref, 2)
    g = torch.randn(out.shape)
    g[torch.rand(out.shape) < 0.2] = -0.0  # a gradient of -0 arrives as +0 (0 + -0)
    out.backward(g)
    out_ref.backward(g)
    assert torch.equal(bits(out.detach()), bits(out_ref.detach()))
    assert torch.equal(bits(ours.grad), bits(ref.grad))
    with torch.no_grad():  # evaluation takes the same path without keeping anything
        assert torch.equal(bits(MaxPool2x2()(x)), bits(out_ref.detach()))


@pytest.mark.parametrize("shape", [(3, 4, 24, 24), (2, 5, 7, 9), (1, 1, 2, 2), (4, 50, 8, 8)])
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_the_fallback_gives_max_pool2d_values(shape, kind):
    x = sample(shape, kind)
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))


def test_the_fallback_gives_nan_where_a_window_holds_one():
    x = torch.randn(1, 2, 6, 6)
    x[0, 0, 2, 3] = float("nan")  # window (1, 1) of channel 0
    ours, ref = max_pool_2x2(x), F.max_pool2d(x, 2)
    assert ours.isnan().equal(ref.isnan()) and ours.isnan().sum() == 1
    assert torch.equal(ours.nan_to_num(7.0), ref.nan_to_num(7.0))


def test_odd_sizes_are_pooled_in_floor_mode_as_by_max_pool2d():
    x = sample((2, 3, 7, 9), "ties").requires_grad_()
    ref = x.detach().clone().requires_grad_()
    out = MaxPool2x2()(x)
    assert out.shape == (2, 3, 3, 4)
    g = torch.randn(out.shape)
    out.backward(g)
    F.max_pool2d(ref, 2).backward(g)
    assert torch.equal(out.detach(), F.max_pool2d(ref.detach(), 2))
    assert torch.equal(x.grad, ref.grad)


def test_it_is_an_nn_maxpool2d_of_kernel_and_stride_2():
    pool = MaxPool2x2()
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2


MIXTURE = {"kind": "scale_mixture", "pi": 0.5, "neg_log_sigma1": 0, "neg_log_sigma2": 6}


@pytest.mark.parametrize("method", [Deterministic("sgd"), BayesByBackprop("bbb", MIXTURE)])
def test_a_lenet5_gives_the_same_logits_and_gradients_as_with_max_pool2d(method):
    torch.manual_seed(0)
    spec = {"name": "lenet5", "conv": [20, 50], "fc": 500, "input_shape": [1, 28, 28]}
    model = build_model({**spec, "n_classes": 10}, method.layer_factory()).eval()
    plain = with_torch_pooling(copy.deepcopy(model))  # the same weights, torch's own pooling
    x = torch.relu(torch.randn(64, 1, 28, 28))  # image-like: many zero pixels
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
    if isinstance(method, Deterministic):  # a training step's gradients, weight by weight
        F.cross_entropy(model(x), torch.arange(64) % 10).backward()
        F.cross_entropy(plain(x), torch.arange(64) % 10).backward()
        for (name, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
            assert torch.equal(p.grad, q.grad), name


def test_with_torch_pooling_puts_back_nn_maxpool2d_with_the_same_outputs():
    spec = {"name": "lenet5", "conv": [20, 50], "fc": 500, "input_shape": [1, 28, 28]}
    model = build_model({**spec, "n_classes": 10}, Deterministic("sgd").layer_factory()).eval()
    x = torch.relu(torch.randn(8, 1, 28, 28))
    with torch.no_grad():
        before = model(x)
        with_torch_pooling(model)
        assert torch.equal(model(x), before)
    kinds = [type(m) for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert kinds == [nn.MaxPool2d, nn.MaxPool2d]
