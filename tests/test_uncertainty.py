"""Calibration and out-of-distribution metrics against hand computations; the calibration table
(one row per method and pruning level, mean ± std over seeds) end to end on tiny data."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from bbbprune.metrics import auroc, calibration_metrics, ood_metrics, predictive_entropy
from bbbprune.report.render import render_grouped_table
from bbbprune.run.loop import train


def _log(rows):
    return torch.tensor(rows, dtype=torch.float64).log().float()


def test_ece_equals_the_hand_computation():
    # confidences 0.9, 0.9 (bin (0.867, 0.933]: accuracy 1/2) and 0.62, 0.62 (bin (0.6, 0.667]:
    # accuracy 1): ECE = 2/4 · |0.5 − 0.9| + 2/4 · |1 − 0.62| = 0.2 + 0.19 = 0.39
    probs = [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.62, 0.3, 0.08], [0.08, 0.3, 0.62]]
    y = torch.tensor([0, 1, 0, 2])
    assert calibration_metrics(_log(probs), y)["ece"] == pytest.approx(0.39, abs=1e-6)


def test_ece_gives_a_confidence_of_one_its_own_bin():
    # confidence 1.0 (wrong: gap −1) and 0.95 (right: gap +0.05). In bins of their own:
    # (|−1| + |0.05|) / 2 = 0.525; sharing the top bin [14/15, 1] would give |−0.95| / 2 = 0.475
    probs = [[1.0, 0.0], [0.95, 0.05]]
    y = torch.tensor([1, 0])
    assert calibration_metrics(_log(probs), y)["ece"] == pytest.approx(0.525, abs=1e-6)


def test_brier_equals_the_hand_computation():
    # (0.3² + 0.2² + 0.1²) = 0.14 and (0.5² + 0.5² + 1²) = 1.5: mean 0.82
    probs = [[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]]
    assert calibration_metrics(_log(probs), torch.tensor([0, 2]))["brier"] == pytest.approx(
        0.82, abs=1e-6
    )


def test_entropy_of_uniform_and_certain_predictions():
    h = predictive_entropy(_log([[0.25] * 4, [1.0, 0.0, 0.0, 0.0]]))
    assert h.tolist() == pytest.approx([math.log(4), 0.0], abs=1e-6)


def test_ood_auroc_counts_the_pairs_ranked_right():
    # two classes: entropy grows as p → 0.5, so the entropies rank 0.99 < 0.9 < 0.8 < 0.7 < 0.5.
    # OOD p = 0.8 beats in-distribution 0.99 and 0.9; OOD p = 0.5 beats all three: 5 of 6 pairs
    def two_class(ps):
        return _log([[p, 1 - p] for p in ps])

    out = ood_metrics(two_class([0.99, 0.9, 0.7]), two_class([0.8, 0.5]))
    assert out["ood_auroc"] == pytest.approx(5 / 6, abs=1e-6)
    assert out["entropy_ood"] > out["entropy_in"]


def test_auroc_counts_ties_as_one_half():
    # negatives 1, 2, 2; positives 2, 3. The positive 2 beats 1 and ties both 2s: 1 + ½ + ½;
    # the positive 3 beats all three: 3. (2 + 3) / 6 pairs
    assert auroc(torch.tensor([1.0, 2.0, 2.0]), torch.tensor([2.0, 3.0])) == pytest.approx(5 / 6)
    gen = torch.Generator().manual_seed(0)
    neg = torch.randint(0, 20, (300,), generator=gen).float()
    pos = torch.randint(5, 25, (200,), generator=gen).float()
    pairs = (pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()
    assert auroc(neg, pos) == pytest.approx(pairs.mean().item(), abs=1e-12)


def test_grouped_table_rows_are_method_by_level_with_mean_and_sample_std():
    recs = []
    for seed, err in enumerate([1.0, 2.0, 4.0]):
        for frac, extra in ((0.0, 0.0), (0.9, 10.0)):
            recs.append(
                {
                    "method": "bbb",
                    "prediction": "mean",
                    "criterion": "snr",
                    "fraction": frac,
                    "seed": seed,
                    "error": err + extra,
                    "ece": 0.01,
                }
            )
        recs.append(  # the own rule reaches another sparsity in every seed: still one row
            {
                "method": "svd",
                "prediction": "mean",
                "criterion": "native",
                "fraction": 0.9 + seed / 100,
                "seed": seed,
                "error": err,
                "ece": 0.02,
            }
        )
    spec = {
        "group_by": ["method", "prediction", "criterion", "fraction"],
        "columns": [
            {"label": "error", "field": "error", "format": "{:.4f}"},
            {"label": "ece / error", "fields": ["ece", "error"], "format": "{:.2f}"},
        ],
    }
    lines = render_grouped_table(spec, pd.DataFrame(recs)).splitlines()
    assert (
        lines[0] == "| method | prediction | criterion | fraction | seeds | error | ece / error |"
    )
    # 1, 2, 4: mean 7/3, sample std sqrt(7/3)
    assert (
        lines[2] == "| bbb | mean | snr | 0 % | 3 | 2.3333 ± 1.5275 | 0.01 ± 0.00 / 2.33 ± 1.53 |"
    )
    assert lines[3].startswith("| bbb | mean | snr | 90 % | 3 | 12.3333 ± 1.5275 |")
    assert lines[4].startswith("| svd | mean | native | – | 3 | 2.3333 ± 1.5275 |")
    assert len(lines) == 5


def test_calibration_records_and_table_end_to_end(smoke_cfg, tmp_path):
    cfg = smoke_cfg("experiment=calibration_mnist", "method=bbb", "prune.latency_repeats=2")
    run_dir = train(cfg, log=lambda *_: None)
    rec = json.loads((run_dir / "records" / "snr_0.9000_global_sampled.json").read_text())
    for key in ("ece", "brier", "nll", "ood_auroc", "entropy_in", "entropy_ood"):
        assert math.isfinite(rec[key]), key
    assert 0 <= rec["ece"] <= 1 and 0 <= rec["brier"] <= 2 and 0 <= rec["ood_auroc"] <= 1
    assert rec["ood_dataset"] == "fmnist" and 0 < rec["export_size_percent"] < 100
    assert rec["latency_ratio_b1"] > 0 and rec["latency_ratio_b256"] > 0


def test_an_experiment_scales_the_sparse_vd_warm_up(smoke_cfg):
    """The method is built with the experiment's warm-up (interpolated from the root config)."""
    from bbbprune.methods import build_method

    method = build_method(smoke_cfg("experiment=calibration_mnist", "method=ard").method)
    assert (method.warmup_start, method.warmup_end) == (0, 1)  # smoke: [0, 1]
    assert build_method(smoke_cfg("method=svd").method).warmup_end == 20  # default
