"""bbbprune.convert / prune_model / sampling / kl_divergence / shrink on networks bbbprune did not
build: a small CNN with grouped, dilated, strided and bias-free convolutions and a residual
addition, and torchvision's ResNet-18, VGG-11 and MobileNet-V2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bbbprune
from bbbprune.errors import UserError
from bbbprune.layers import BayesConv2d, BayesLinear, Conv2dSVD, LinearSVD, prunable_layers


class SmallCNN(nn.Module):
    """Conv layers of every kind convert must handle, batch norm, a residual addition."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False)
        self.depthwise = nn.Conv2d(8, 8, (3, 1), padding=(1, 0), groups=8)
        self.pointwise = nn.Conv2d(8, 16, 1, bias=False)
        self.head = nn.Linear(16, n_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = x + F.relu(self.depthwise(self.grouped(x)))
        x = F.relu(self.pointwise(x))
        return self.head(x.mean(dim=(2, 3)))


POSTERIOR_PARAMETERS = ("weight_mu", "weight_rho", "bias_mu", "bias_rho", "theta", "log_sigma2")


def torchvision_model(name: str) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=10)


def _with_trained_bn(model: nn.Module) -> nn.Module:
    """Non-trivial batch-norm statistics, so that eval mode differs from train mode."""
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    return model.eval()


def _original_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if type(m) in (nn.Linear, nn.Conv2d)}


def check_conversion(model: nn.Module, x: torch.Tensor, method: str, shrinks: bool = True) -> None:
    """The properties asked of a converted network. ``shrinks``: whether masking half of the
    classifier's inputs makes whole channels removable (not in a ResNet, see below)."""
    torch.manual_seed(0)
    model = _with_trained_bn(model)
    originals = _original_layers(model)
    n_prunable = sum(m.weight.numel() for m in originals.values())
    with torch.no_grad():
        expected = model(x)

    bnn = bbbprune.convert(model, method=method, init="pretrained").eval()
    # every Linear/Conv2d replaced, nothing else; the original is left untouched
    assert set(prunable_layers(bnn)) == set(originals)
    assert not _original_layers(bnn)
    assert _original_layers(model).keys() == originals.keys()
    with torch.no_grad():
        assert torch.allclose(bnn(x), expected, atol=1e-4, rtol=0)

    # a few ELBO steps: finite loss, every posterior parameter moves (batch-norm shifts followed
    # by a convolution and another batch norm in training mode get no gradient: not checked)
    bnn.train()
    before = {k: v.detach().clone() for k, v in bnn.named_parameters()}
    opt = torch.optim.Adam(bnn.parameters(), lr=1e-3)
    y = torch.arange(len(x)) % 10
    for _ in range(2):
        opt.zero_grad()
        loss = F.cross_entropy(bnn(x), y) + bbbprune.kl_divergence(bnn) / 1000
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    posterior = [k for k in before if k.endswith(POSTERIOR_PARAMETERS)]
    moved = [k for k, v in bnn.named_parameters() if not torch.equal(v, before[k])]
    assert posterior and set(posterior) <= set(moved)

    # pruning at 90 % removes round(0.9 n) of the n weights of the original Linear/Conv2d layers
    criterion = "snr" if method == "bbb" else "log_alpha"
    masks = bbbprune.prune_model(bnn, criterion, 0.9)
    removed = sum(int((m == 0).sum()) for m in masks.values())
    assert removed == round(0.9 * n_prunable)
    assert bbbprune.sparsity(bnn)["removed"] == removed

    if method == "bbb":  # sampled weights: exactly zero where pruned, random elsewhere
        for name, layer in prunable_layers(bnn).items():
            with bbbprune.sampling(bnn, True):
                w, _ = layer._weights()
            mask = masks[name]
            assert torch.all(w[mask == 0] == 0), name
            kept = mask == 1
            if kept.any():
                assert not torch.equal(w[kept], layer.weight_mu[kept]), name

    # shrink: fewer parameters, the masked network's outputs. The classifier also stops
    # reading half of its inputs, so that whatever produces them only there becomes removable
    head = [m for m in prunable_layers(bnn).values() if isinstance(m, BayesLinear | LinearSVD)][-1]
    head_mask = head.weight_mask.clone()
    head_mask[:, : head_mask.shape[1] // 2] = 0
    head.set_weight_mask(head_mask)
    bnn.eval()
    small = bbbprune.shrink(bnn, x[:1])
    with torch.no_grad():  # equal up to float32 rounding of sums taken in another order
        assert torch.allclose(small(x), bnn(x), atol=1e-4, rtol=1e-5)
    n_small = sum(p.numel() for p in small.parameters())
    n_model = sum(p.numel() for p in model.parameters())
    assert n_small < n_model if shrinks else n_small == n_model


def test_small_cnn_converts_with_groups_dilation_stride_and_no_bias():
    torch.manual_seed(0)
    model = SmallCNN()
    bnn = bbbprune.convert(model)
    assert isinstance(bnn.grouped, BayesConv2d) and bnn.grouped.groups == 4
    assert bnn.grouped.dilation == (2, 2) and bnn.grouped.bias_mu is None
    assert bnn.depthwise.weight_mu.shape == (8, 1, 3, 1)
    assert isinstance(bnn.head, BayesLinear) and isinstance(bnn.bn, nn.BatchNorm2d)
    svd = bbbprune.convert(model, method="svd")
    assert isinstance(svd.grouped, Conv2dSVD) and isinstance(svd.head, LinearSVD)


@pytest.mark.parametrize("method", ["bbb", "svd"])
def test_small_cnn_properties(method):
    check_conversion(SmallCNN(), torch.randn(2, 3, 16, 16), method)


def test_resnet18_mean_weights_equal_the_original():
    torch.manual_seed(0)
    model = _with_trained_bn(torchvision_model("resnet18"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        got = bbbprune.convert(model).eval()(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, shrinks",
    # ResNet-18: the classifier's unread inputs are channels of the residual stream, which
    # layer4.1.conv1 still reads; DepGraph removes a channel only with its whole group, so the
    # shrunk network keeps every parameter (and gives the same outputs)
    [("resnet18", False), ("vgg11", True), ("mobilenet_v2", True)],
)
def test_torchvision_models_properties(name, shrinks):
    check_conversion(torchvision_model(name), torch.randn(2, 3, 32, 32), "bbb", shrinks)


def test_moped_sigma_and_constant_sigma():
    """MOPED: σ = δ·|w| (so |μ|/σ = 1/δ everywhere); a constant σ otherwise; Sparse VD with δ
    starts at log α = 2 log δ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    bnn = bbbprune.convert(model, delta=0.2)
    layer = bnn[0]
    assert torch.allclose(layer.weight_sigma(), 0.2 * model[0].weight.abs(), rtol=1e-4)
    assert torch.allclose(F.softplus(layer.bias_rho), 0.2 * model[0].bias.abs(), rtol=1e-4)
    const = bbbprune.convert(model, sigma_init=0.05)
    assert torch.allclose(const[2].weight_sigma(), torch.full((3, 5), 0.05), rtol=1e-5)
    svd = bbbprune.convert(model, method="svd", delta=0.5)
    expected = torch.log((0.5 * model[0].weight).square())
    assert torch.allclose(svd[0].log_sigma2, expected, atol=1e-5)
    assert torch.equal(svd[0].theta, model[0].weight)
    rnd = bbbprune.convert(model, init="random")
    assert not torch.equal(rnd[0].weight_mu, model[0].weight)


def test_include_and_exclude_select_layers():
    model = SmallCNN()
    only_head = bbbprune.convert(model, include="head")
    assert set(prunable_layers(only_head)) == {"head"}
    assert type(only_head.stem) is nn.Conv2d
    no_head = bbbprune.convert(model, exclude=["head"])
    assert "head" not in prunable_layers(no_head) and "stem" in prunable_layers(no_head)
    convs = bbbprune.convert(model, include="Conv2d")
    assert set(prunable_layers(convs)) == {"stem", "grouped", "depthwise", "pointwise"}


def test_bad_input_is_one_clear_error():
    with pytest.raises(UserError, match="no nn.Linear or nn.Conv2d"):
        bbbprune.convert(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))
    with pytest.raises(UserError, match="'fc9' matches no module"):
        bbbprune.convert(SmallCNN(), include="fc9")
    seq = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(3, 2))
    with pytest.raises(UserError, match=r"names 0 \(Conv1d\), which cannot be converted"):
        bbbprune.convert(seq, include="0")
    with pytest.raises(UserError, match="Conv1d"):
        bbbprune.convert(seq, include="Conv1d")
    lazy = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(UserError, match=r"0 \(LazyLinear\) has uninitialised \(lazy\) parameters"):
        bbbprune.convert(lazy, init="pretrained")
    with pytest.raises(UserError, match="unknown convert method"):
        bbbprune.convert(SmallCNN(), method="mcdropout")


class ResidualDepthwise(nn.Module):
    """stem → BN → ReLU, plus a residual depthwise branch, → pointwise → head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(8, 16, 1, bias=False)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = x + F.relu(self.depthwise(x))
        return self.head(F.relu(self.pointwise(x)).mean(dim=(2, 3)))


def test_shrink_removes_unread_channels_exactly():
    """A channel goes, with its batch-norm entries and the filters that computed it, when every
    layer reading it has zero weights on it; the outputs stay those of the masked network."""
    torch.manual_seed(0)
    model = _with_trained_bn(ResidualDepthwise())
    bnn = bbbprune.convert(model).eval()
    # channel c of the residual sum is read by the depthwise conv (filter c) and the pointwise
    # conv (column c): channels 0-5 are not read by the pointwise conv, 0-3 by nobody
    pointwise = torch.ones(16, 8, 1, 1)
    pointwise[:, :6] = 0
    bnn.pointwise.set_weight_mask(pointwise)
    depthwise = torch.ones(8, 1, 3, 3)
    depthwise[:4] = 0
    bnn.depthwise.set_weight_mask(depthwise)
    x = torch.randn(3, 3, 16, 16)
    small = bbbprune.shrink(bnn, x[:1])
    assert small.stem.out_channels == 4 and small.bn.num_features == 4
    assert small.depthwise.out_channels == 4 and small.pointwise.in_channels == 4
    assert small.head.in_features == 16
    with torch.no_grad():
        assert torch.allclose(small(x), bnn(x), atol=1e-5, rtol=0)
    # a grouped (not depthwise) convolution keeps the channels coupled to it
    grouped = bbbprune.convert(SmallCNN()).eval()
    mask = torch.ones(16, 8, 1, 1)
    mask[:, :6] = 0
    grouped.pointwise.set_weight_mask(mask)
    kept = bbbprune.shrink(grouped, x[:1])
    assert kept.stem.out_channels == 8
    with torch.no_grad():
        assert torch.allclose(kept(x), grouped(x), atol=1e-5, rtol=0)


def test_shrink_uses_the_handwritten_rebuild_for_bbbprune_networks():
    from bbbprune.methods import Deterministic
    from bbbprune.nets.models import MLP

    torch.manual_seed(0)
    net = MLP(Deterministic("sgd").layer_factory(), 20, [8, 6], 3).eval()
    mask = torch.ones(8, 20)
    mask[:4] = 0  # hidden units 0-3 lose every input: constants, folded into the next bias
    net.net[1].set_weight_mask(mask)
    small = bbbprune.shrink(net)
    x = torch.randn(5, 20)
    assert isinstance(small, nn.Sequential)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())
    with torch.no_grad():
        assert torch.allclose(small(x), net(x), atol=1e-5)


def test_import_bbbprune_stays_cheap():
    code = "import sys, bbbprune; assert 'torch' not in sys.modules; print(bbbprune.convert.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "bbbprune.nets.convert"


@pytest.mark.slow
def test_the_docs_conversion_example_runs_as_written(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "convert.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 7
    exec(compile(code, "docs/convert.md", "exec"), {})
    assert capsys.readouterr().out.strip() == str(0.9000000179018464)
