"""Channel/filter pruning made physical: the rebuilt ResNets and LeNet-5 compute what the masked
models compute, with the removed filters gone; weights and MACs against hand counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bbbprune.data.generated_cifar import write_generated_cifar
from bbbprune.deploy.complexity import compression_summary, count_macs, count_weights
from bbbprune.deploy.primitives import SelectFeatures
from bbbprune.deploy.structured import kept_widths, shrink
from bbbprune.deploy.structured_resnet import ScatterConv, SlimResNet
from bbbprune.layers import prunable_layers
from bbbprune.methods.deterministic import Deterministic
from bbbprune.nets.models import build_model
from bbbprune.nets.resnets import CifarResNet

FACTORY = Deterministic("sgd").layer_factory()
RESNET20 = {"name": "resnet20", "widths": [16, 32, 64], "blocks": [3, 3, 3], "shortcut": "A"}
RESNET18_NARROW = {"name": "resnet18", "widths": [8, 16, 16, 32], "blocks": [2, 2, 2, 2]}


def resnet(spec: dict) -> CifarResNet:
    spec = {"shortcut": "B", **spec, "input_shape": [3, 32, 32], "n_classes": 10}
    model = build_model(spec, FACTORY)
    for m in model.modules():  # batch-norm statistics far from the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.3, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def remove_filters(model: nn.Module, keep: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Zero whole output filters of every conv (and input columns of linear layers) through the
    masks, as a group-pruning method does; returns the 0/1 filter masks by layer name."""
    g = torch.Generator().manual_seed(seed)
    kept = {}
    for name, layer in prunable_layers(model).items():
        w = layer.weight
        if w.dim() == 4:
            k = (torch.rand(w.shape[0], generator=g) < keep).float()
            layer.set_weight_mask(k.view(-1, 1, 1, 1).expand_as(w).clone())
        else:
            k = (torch.rand(w.shape[1], generator=g) < keep).float()
            layer.set_weight_mask(k.view(1, -1).expand_as(w).clone())
        kept[name] = k
    return kept


def filters_computed(net: nn.Module) -> int:
    return sum(m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("spec", [RESNET20, RESNET18_NARROW], ids=["resnet20", "resnet18-narrow"])
def test_rebuilt_resnet_equals_masked_resnet_with_removed_filters_gone(spec):
    torch.manual_seed(0)
    model = resnet(spec)
    kept = remove_filters(model, keep=0.5)
    blocks, name = model.blocks(), {m: n for n, m in model.named_modules()}
    # corner cases: a block with every inner channel removed, one with every output removed
    for conv in (blocks[1].conv1, blocks[2].conv2):
        conv.weight_mask.zero_()
        kept[name[conv]] = torch.zeros_like(kept[name[conv]])
    small = shrink(model)
    assert isinstance(small, SlimResNet)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)
    # exactly the kept filters are computed, less those left without use: conv2 of the block
    # with no inner channel (its filters only see constants) and conv1 of the block whose conv2
    # is all removed (nothing reads its output)
    conv_kept = sum(int(k.sum()) for n, k in kept.items() if n != "fc")
    conv_kept -= int(kept[name[blocks[1].conv2]].sum()) + int(kept[name[blocks[2].conv1]].sum())
    assert filters_computed(small) == conv_kept
    assert filters_computed(small) < filters_computed(model) * 0.7
    assert small.blocks[1].inner is None  # no inner channel left: conv1 and conv2 are gone
    assert small.blocks[1].main.conv is None
    assert small.blocks[2].main.conv is None
    assert small.select.index.numel() == int(kept["fc"].sum())


def test_unpruned_rebuild_is_the_same_network_and_the_same_cost():
    torch.manual_seed(1)
    model = resnet(RESNET20)
    small = shrink(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)
    assert count_weights(small) == count_weights(model)
    assert count_macs(small, (3, 32, 32)) == count_macs(model, (3, 32, 32))
    assert all(s.all_kept for s in small.modules() if isinstance(s, ScatterConv))


def test_resnet20_size_against_hand_count():
    """He et al.'s ResNet-20: 0.27M parameters, ~41M multiply-accumulates per 32×32 image."""
    model = resnet(RESNET20)

    def conv(h, c_in, c_out, k=3):  # h×h output map
        return h * h * c_out * c_in * k * k

    macs = conv(32, 3, 16) + 6 * conv(32, 16, 16)  # stem, stage 1
    macs += conv(16, 16, 32) + 5 * conv(16, 32, 32)  # stage 2 (first conv has stride 2)
    macs += conv(8, 32, 64) + 5 * conv(8, 64, 64)  # stage 3
    macs += 64 * 10  # classifier
    weights = 3 * 16 * 9 + 6 * 16 * 16 * 9
    weights += 16 * 32 * 9 + 5 * 32 * 32 * 9 + 32 * 64 * 9 + 5 * 64 * 64 * 9 + 64 * 10
    assert count_macs(model, (3, 32, 32)) == macs == 40_551_040
    assert count_weights(model) == weights
    bn = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    conv_bias = 16 + 6 * 16 + 6 * 32 + 6 * 64
    assert sum(p.numel() for p in model.parameters()) == weights + bn + conv_bias + 10


def test_macs_and_weights_of_a_tiny_net_by_hand():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 4))
    # conv: 2 filters × 3×3 outputs × (1·3·3) MACs; linear 18·4
    assert count_macs(net, (1, 5, 5)) == 2 * 9 * 9 + 18 * 4
    assert count_weights(net) == 2 * 9 + 18 * 4
    strided = nn.Sequential(nn.Conv2d(2, 3, 2, stride=2, padding=1))  # 5×5 → 3×3
    assert count_macs(strided, (2, 5, 5)) == 3 * 9 * (2 * 2 * 2)


def test_lenet5_filter_pruning_is_physical():
    torch.manual_seed(2)
    spec = {"name": "lenet5", "conv": [20, 50], "fc": 500, "input_shape": [1, 28, 28]}
    model = build_model({**spec, "n_classes": 10}, FACTORY).eval()
    layers = prunable_layers(model)
    convs = [n for n, m in layers.items() if m.weight.dim() == 4]
    kept = remove_filters(model, keep=0.4, seed=3)
    for n in layers:  # the classifier keeps its inputs; only conv filters go
        if n not in convs:
            layers[n].set_weight_mask(None)
    small = shrink(model)
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)
    k1, k2 = (int(kept[n].sum()) for n in convs)
    assert kept_widths(small) == [k1, k2, k2 * 16, 500, 10]
    select = next(m for m in small if isinstance(m, SelectFeatures))
    assert select.index.numel() == k2 * 16
    macs = 24 * 24 * k1 * 25 + 8 * 8 * k2 * k1 * 25 + k2 * 16 * 500 + 500 * 10
    assert count_macs(small, (1, 28, 28)) == macs
    summary = compression_summary(model, x, measure_speed=True, repeats=2, batches=(1, 8))
    assert summary["macs_pruned"] == macs
    assert summary["macs_dense"] == 24 * 24 * 20 * 25 + 8 * 8 * 50 * 20 * 25 + 800 * 500 + 5000
    assert summary["rebuild_max_abs_diff"] < 1e-4 and summary["rebuild_same_predictions"]
    assert summary["speedup_b1"] > 0 and "latency_pruned_b8_ms" in summary


def test_generated_cifar_batches_load_through_the_real_reader(tmp_path):
    from bbbprune.data.tensors import _cifar_tensors

    folder = write_generated_cifar(tmp_path, per_batch=30, n_test=20, seed=0)
    x, y = _cifar_tensors(folder, train=True)
    xt, yt = _cifar_tensors(folder, train=False)
    assert x.shape == (150, 3, 32, 32) and x.dtype == torch.uint8 and xt.shape[0] == 20
    assert set(y.tolist()) <= set(range(10)) and len(set(y.tolist())) > 5
    # classes differ in mean colour: the per-class mean images are far apart
    means = torch.stack([x[y == c].float().mean((0, 2, 3)) for c in y.unique()])
    assert torch.cdist(means, means).add(torch.eye(len(means)) * 1e3).min() > 5
