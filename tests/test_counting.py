"""One counting rule for every method (bbbprune.deploy.counting), checked against counts done by
hand: prunable weights, masked weights, the weights of the network as deployed once dead units
are gone, compression and multiply-adds."""

from __future__ import annotations

import pytest
import torch

from bbbprune.deploy.counting import deployed_counts
from bbbprune.layers import prunable_layers
from bbbprune.layers.masked import MaskedConv2d, MaskedLinear
from bbbprune.nets.factory import LayerFactory
from bbbprune.nets.models import MLP, LeNet5
from bbbprune.pruning.masking import apply_masks

FACTORY = LayerFactory(
    linear=lambda i, o: MaskedLinear(i, o),
    conv=lambda i, o, k, stride=1, padding=0: MaskedConv2d(i, o, k, stride, padding),
)


def _ones_masks(net):
    return {n: torch.ones_like(m.point_weight()) for n, m in prunable_layers(net).items()}


def _nonzero_weights(net):
    torch.manual_seed(0)
    with torch.no_grad():
        for m in prunable_layers(net).values():  # no weight is zero by chance
            m.point_weight().copy_(torch.rand_like(m.point_weight()) + 0.1)


def test_mlp_with_dead_units_by_hand():
    """4-3-2-2 MLP, P = 12 + 6 + 4 = 22 weights. Masked: hidden unit a0 gets no input (row 0 of
    W1, 4), input 2 is read by nobody (column 2 of W1: 2 more), one scattered weight W1[1,3]
    (1), and unit b1 feeds nothing (column 1 of W3, 2): 9 masked. Deployed: inputs {0,1,3}, a1
    and a2, b0: W1 block 2x3 with W1[1,3] = 0 → 5, W2 b0 ← {a1, a2} → 2 (a0's outgoing weights
    and b1's incoming ones go with their units), W3 from b0 → 2: D = 9."""
    net = MLP(FACTORY, 4, [3, 2], 2)
    _nonzero_weights(net)
    masks = _ones_masks(net)
    masks["net.1"][0, :] = 0
    masks["net.1"][:, 2] = 0
    masks["net.1"][1, 3] = 0
    masks["net.5"][:, 1] = 0
    apply_masks(net, masks)
    c = deployed_counts(net, (4,))
    assert c["weights_prunable"] == 22 and c["weights_masked"] == 9
    assert c["masked_sparsity"] == pytest.approx(9 / 22)
    assert c["weights_deployed"] == 9
    assert c["removed_deployed"] == pytest.approx(13 / 22)
    assert c["compression_deployed"] == pytest.approx(22 / 9)
    # a linear weight is one multiply-add per input
    assert (c["macs_dense"], c["macs_deployed"]) == (22, 9)
    assert c["speedup_theoretical"] == pytest.approx(22 / 9)
    assert c["deployed_rebuild"] is True


def test_ssvi_like_node_masks_count_the_weights_of_removed_units():
    """SS-VI's rule masks only the outgoing weights of a removed node. 6-4-3 MLP, P = 24 + 12 =
    36: hidden units 0 and 1 (W2 columns 0, 1: 6 weights) and input 5 (W1 column 5: 4) are
    masked, 10 weights (28 %). As deployed the two hidden units are gone with their incoming
    weights too: W1 rows {2, 3} × inputs 0-4 = 10, W2 3 × 2 = 6, D = 16: 20 / 36 = 56 %
    removed, compression 2.25."""
    net = MLP(FACTORY, 6, [4], 3)
    _nonzero_weights(net)
    masks = _ones_masks(net)
    masks["net.3"][:, :2] = 0
    masks["net.1"][:, 5] = 0
    apply_masks(net, masks)
    c = deployed_counts(net, (6,))
    assert (c["weights_prunable"], c["weights_masked"], c["weights_deployed"]) == (36, 10, 16)
    assert c["masked_sparsity"] == pytest.approx(10 / 36)
    assert c["removed_deployed"] == pytest.approx(20 / 36)
    assert c["compression_deployed"] == pytest.approx(2.25)
    assert (c["macs_dense"], c["macs_deployed"]) == (36, 16)


def test_lenet5_macs_by_hand():
    """LeNet-5 4-6-12 on 1×28×28. conv1 4×1×5×5 = 100 weights at 24·24 = 576 positions,
    conv2 6×4×5×5 = 600 at 8·8 = 64, fc1 96 × 12 = 1152, fc2 12 × 10 = 120: P = 1972, dense
    MACs 57,600 + 38,400 + 1,152 + 120 = 97,272. Filter 0 of conv1 masked (25 weights; dead:
    its 6 · 25 = 150 outgoing conv2 weights go too) and conv2's filter 5 gets no input (100
    weights; dead: its 16 · 12 = 192 fc1 weights go too): conv1 75 weights (43,200 MACs), conv2 5 × 3 × 25 = 375 (24,000), fc1
    80 × 12 = 960, fc2 120: D = 1530, deployed MACs 68,280."""
    net = LeNet5(FACTORY, (1, 28, 28), 10, conv=(4, 6), fc=12)
    _nonzero_weights(net)
    masks = _ones_masks(net)
    masks["features.0"][0] = 0
    masks["features.3"][5] = 0
    apply_masks(net, masks)
    c = deployed_counts(net, (1, 28, 28))
    assert c["weights_prunable"] == 1972
    assert c["weights_masked"] == 25 + 100
    assert c["weights_deployed"] == 1530
    assert (c["macs_dense"], c["macs_deployed"]) == (97_272, 68_280)
    assert c["speedup_theoretical"] == pytest.approx(97_272 / 68_280)


def test_lenet5_with_every_first_filter_removed_is_a_constant_network():
    """No filter of conv1 left: nothing reaches conv2, fc1 or fc2, so the deployed network keeps
    no weight and computes no multiply-add (its output is the folded bias), and the rebuild is
    reported as collapsed rather than run (torch refuses a convolution with no filters)."""
    from bbbprune.deploy.complexity import compression_summary
    from bbbprune.deploy.shrink import shrink_measurements

    net = LeNet5(FACTORY, (1, 28, 28), 10, conv=(4, 6), fc=12)
    _nonzero_weights(net)
    masks = _ones_masks(net)
    masks["features.0"][:] = 0
    apply_masks(net, masks)
    c = deployed_counts(net, (1, 28, 28))
    assert (c["weights_deployed"], c["macs_deployed"]) == (0, 0)
    assert c["weights_masked"] == 100
    summary = compression_summary(net, torch.zeros(2, 1, 28, 28), measure_speed=True)
    assert summary["rebuild_collapsed"] and summary["macs_pruned"] == 0
    assert summary["filters_pruned"] == 0 and summary["channel_sparsity"] == 1
    shrunk = shrink_measurements(net, torch.zeros(2, 1, 28, 28), repeats=3)
    assert shrunk["shrunk_collapsed"] and "shrunk_latency_b1_ms" not in shrunk


def test_unpruned_network_counts_every_weight():
    net = MLP(FACTORY, 5, [3], 2)
    _nonzero_weights(net)
    c = deployed_counts(net, (5,))
    assert c["weights_deployed"] == c["weights_prunable"] == 21 and c["weights_masked"] == 0
    assert c["compression_deployed"] == 1 and c["speedup_theoretical"] == 1


def test_every_pruning_record_carries_the_counts(smoke_cfg):
    from bbbprune.evaluation.records import RECORDS
    from bbbprune.run.loop import train
    from bbbprune.storage import read_json

    run_dir = train(smoke_cfg("method=sgd", "prune.fractions=[0.0,0.9]"), log=lambda *_: None)
    records = [read_json(p) for p in sorted((run_dir / RECORDS).glob("*.json"))]
    assert {r["fraction"] for r in records} == {0.0, 0.9}
    dense = 784 * 32 + 32 * 16 + 16 * 10
    for rec in records:
        assert rec["weights_prunable"] == dense and rec["macs_dense"] == dense
        masked = round(rec["fraction"] * dense)
        assert abs(rec["weights_masked"] - masked) <= 1
        # deployed weights are at most the unmasked ones; the MLP's MACs equal its weights
        assert rec["weights_deployed"] <= dense - rec["weights_masked"]
        assert rec["macs_deployed"] == rec["weights_deployed"]
        assert rec["compression_deployed"] == pytest.approx(dense / rec["weights_deployed"])
        assert rec["removed_deployed"] >= rec["masked_sparsity"] - 1e-12
