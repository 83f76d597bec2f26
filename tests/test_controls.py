"""Controls at matched sparsity (Blalock et al. 2020): per-layer kept counts equal the reference
mask's, matched magnitude keeps the largest |w| of each layer, global controls remove the same
total; and the pruning evaluation writes them beside each Bayesian criterion."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bbbprune.layers import MaskedLinear
from bbbprune.pruning.controls import control_masks, reference_criteria
from bbbprune.pruning.masking import masks_matching
from bbbprune.pruning.registry import CONTROLS
from bbbprune.run.loop import train
from bbbprune.run.prune_run import prune_run


def _net():
    a, b = MaskedLinear(3, 2, bias=False), MaskedLinear(2, 2, bias=False)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[0.1, -0.9, 0.4], [0.3, -0.2, 0.8]]))
        b.weight.copy_(torch.tensor([[5.0, -0.05], [0.06, 7.0]]))
    return nn.Sequential(a, nn.ReLU(), b)


# a reference mask that removes 4 of 6 weights of layer 0 and none of layer 2
REFERENCE = {
    "0": torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    "2": torch.ones(2, 2),
}


def test_matched_masking_removes_the_reference_count_per_layer_by_lowest_score():
    scores = {"x": torch.tensor([3.0, 1.0, 2.0, 0.5]), "y": torch.tensor([9.0, 8.0])}
    ref = {"x": torch.tensor([1.0, 0.0, 0.0, 1.0]), "y": torch.tensor([0.0, 1.0])}
    masks = masks_matching(scores, ref)
    assert masks["x"].tolist() == [1.0, 0.0, 1.0, 0.0]  # two lowest of x: 0.5 and 1.0
    assert masks["y"].tolist() == [1.0, 0.0]  # one lowest of y: 8.0


def test_matched_magnitude_keeps_the_largest_weights_of_each_layer():
    masks = control_masks(_net(), "magnitude_matched", REFERENCE)
    # layer 0 keeps 2 of 6: |−0.9| and |0.8|; layer 2 keeps all 4
    assert masks["0"].tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert masks["2"].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_global_magnitude_removes_the_same_total_over_all_layers():
    masks = control_masks(_net(), "magnitude_global", REFERENCE)
    # 4 smallest |w| of all 10: 0.05, 0.06, 0.1, 0.2 (two of them in layer 2)
    assert masks["0"].tolist() == [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]
    assert masks["2"].tolist() == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matched_random_keeps_the_reference_count_in_every_layer(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(MaskedLinear(30, 20), nn.ReLU(), MaskedLinear(20, 7))
    ref = {"0": (torch.rand(20, 30) > 0.8).float(), "2": (torch.rand(7, 20) > 0.3).float()}
    masks = control_masks(net, "random_matched", ref, seed=seed)
    for name in ref:
        assert int(masks[name].sum()) == int(ref[name].sum())
    assert not torch.equal(masks["0"], ref["0"])  # a different subset, same count
    total = control_masks(net, "random_global", ref, seed=seed)
    assert sum(int(m.sum()) for m in total.values()) == sum(int(m.sum()) for m in ref.values())


def test_registry_holds_the_four_controls_and_only_posterior_criteria_get_them():
    assert set(CONTROLS) == {
        "random_global",
        "random_matched",
        "magnitude_global",
        "magnitude_matched",
    }
    assert reference_criteria(["snr", "magnitude", "random", "log_alpha"]) == ["snr", "log_alpha"]


def test_pruning_evaluation_writes_controls_beside_each_bayesian_criterion(smoke_cfg):
    run_dir = train(smoke_cfg("method=bbb", "prune.fractions=[0.0]"), log=lambda *_: None)
    recs = prune_run(
        run_dir,
        smoke_cfg(f"prune.controls=[{','.join(CONTROLS)}]"),  # smoke scale turns them off
        ["snr", "magnitude"],
        [0.0, 0.9],
        overwrite=True,
        log=print,
    )
    controls = [r for r in recs if r["reference_criterion"] == "snr"]
    assert {r["criterion"] for r in controls} == set(CONTROLS)
    assert {r["fraction"] for r in controls} == {0.9}  # none at 0: nothing is removed there
    snr = next(r for r in recs if r["criterion"] == "snr" and r["fraction"] == 0.9)
    for r in controls:
        assert r["kept"] == snr["kept"]
        if r["criterion"].endswith("_matched"):
            assert r["per_layer_sparsity"] == snr["per_layer_sparsity"]
    assert all(r["reference_criterion"] is None for r in recs if r not in controls)
    # no choice reads a control: they get the test split only, the criteria both splits
    assert all("val_error" not in r and "error" in r for r in controls)
    assert all("val_error" in r for r in recs if r not in controls and r["prediction"] == "mean")
    path = run_dir / "records" / "random_matched-vs-snr_0.9000_global_mean.json"
    assert json.loads(path.read_text())["reference_criterion"] == "snr"
