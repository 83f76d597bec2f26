"""The reporting protocol of every pruning table (issue 17; Blalock et al. 2020): operating
points from 2x to 100x in every pruning experiment, headers that state the settings of the runs
from their records, single-seed cells marked, validation-only choices that state grid and rule
and may bound a check from below, trade-off figures drawn from records alone, and the
Vidlička experiment at the report's own setting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_config

from bbbprune.report.choice import choose
from bbbprune.report.choice_grid import declaration, varying_keys
from bbbprune.report.protocol import header_lines, settings_table
from bbbprune.report.render import _fmt
from bbbprune.report.tradeoff import tradeoff_figure

EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "experiment").glob("*.yaml")
)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_pruning_experiment_has_five_operating_points_from_2x_to_100x(name):
    """Experiments that sweep fractions (not the method's own rule alone, not a choice grid
    that reads two fixed fractions) reach 2x (0.5) and 100x (0.99) with >= 5 points between."""
    cfg = compose_config([f"experiment={name}", "scale=small"])
    fractions = [float(f) for f in cfg.prune.fractions]
    if not fractions or fractions == [0.0] or cfg.table.get("layout") == "choice":
        pytest.skip("own rule only or a validation choice: no fraction sweep")
    points = [f for f in fractions if 0.5 - 1e-9 <= f <= 0.99 + 1e-9]
    assert len(points) >= 5 and min(points) == 0.5 and max(points) == 0.99


def test_single_seed_cells_are_marked_and_several_show_mean_and_sample_std():
    assert _fmt([1.5], "{:.2f}") == "1.50†"
    # sample std of 1, 2, 4: sqrt(((−4/3)² + (−1/3)² + (5/3)²) / 2) = 1.5275
    assert _fmt([1.0, 2.0, 4.0], "{:.4f}") == "2.3333 ± 1.5275"


BBB_RUN = {
    "method": "bbb",
    "prior": "ScaleMixture(pi=0.25, sigma1=1, sigma2=0.1353)",
    "kl_weighting": "uniform",
    "train_samples": 1,
    "eval_samples": 10,
}
SVD_RUN = {
    "method": "svd",
    "prior": "log-uniform",
    "threshold": 3.0,
    "warmup_start": 5,
    "warmup_end": 20,
    "eval_samples": 10,
}


def test_header_states_prior_kl_weight_warmup_samples_and_threshold_from_records():
    lines = settings_table([BBB_RUN, SVD_RUN, {"method": "sgd"}], {})
    bbb = next(row for row in lines if row.startswith("| bbb"))
    svd = next(row for row in lines if row.startswith("| svd"))
    sgd = next(row for row in lines if row.startswith("| sgd"))
    assert "pi=0.25" in bbb and "KL/N per example, uniform" in bbb and "| 1 / 10 |" in bbb
    assert "| none |" in bbb  # no warm-up
    assert "0 before epoch 5, linear to 1 at epoch 20" in svd and "own rule 3.0" in svd
    assert "deterministic" in sgd and "no KL term" in sgd


def test_header_says_which_cells_are_mean_weights_and_which_sampled():
    spec = {
        "source": "a paper, Table 1",
        "published_setting": "reduced: 2x400 instead of 2x1200",
        "rows": [
            {"label": "by SNR", "select": {"prediction": "mean"}},
            {"label": "by SNR, sampled", "select": {"prediction": "sampled"}},
        ],
    }
    df = pd.DataFrame(
        [{"prediction": "mean", "samples": 1}, {"prediction": "sampled", "samples": 10}]
    )
    text = "\n".join(header_lines(spec, [BBB_RUN], df))
    assert (
        "mean-weights network (posterior means; for EM-MCMC the last sample): rows by SNR" in text
    )
    assert "sampled predictive (S = 10): rows by SNR, sampled" in text
    assert "against the published one (source above): reduced: 2x400" in text


def test_a_check_with_a_lower_bound_rejects_groups_below_it():
    spec = {
        "group_by": "setting",
        "score": {"label": "val", "field": "val_error", "select": {"criterion": "native"}},
        "checks": [
            {
                "label": "removed",
                "field": "achieved_sparsity",
                "select": {"criterion": "native"},
                "min": 0.9,
            }
        ],
        "columns": [],
    }
    df = pd.DataFrame(
        [
            {"setting": "a", "criterion": "native", "val_error": 1.0, "achieved_sparsity": 0.85},
            {"setting": "b", "criterion": "native", "val_error": 1.5, "achieved_sparsity": 0.93},
            {"setting": "c", "criterion": "native", "val_error": 2.0, "achieved_sparsity": 0.99},
        ]
    )
    rows, chosen = choose(spec, df)
    assert chosen == "b"  # a has the best score but removes too little
    assert [r["passed"] for r in rows] == [False, True, True]
    assert choose(spec, df[df["setting"] == "a"])[1] is None


def test_choice_table_states_grid_and_rule_and_groups_by_grid_point():
    params = {"method": "bbb", "seed": "0,1,2", "method.optimizer.lr": "1e-4,2e-4"}
    assert varying_keys(params) == ["method.optimizer.lr"]  # seeds are averaged, not a group
    spec = {
        "score": {"field": "val_error", "select": {"criterion": "native"}},
        "checks": [{"field": "channel_sparsity", "select": {"criterion": "native"}, "min": 0.5}],
    }
    text = "\n".join(declaration(spec, params))
    assert "method.optimizer.lr ∈ {1e-4,2e-4}" in text and "seed ∈ {0,1,2}" in text
    assert "lowest val_error (criterion native), on the validation split" in text
    assert "channel_sparsity (criterion native) ≥ 0.5" in text


def _synthetic_records():
    recs = []
    for seed in (0, 1):
        for method, criterion, reference in (
            ("bbb", "snr", None),
            ("bbb", "random_matched", "snr"),
            ("sgd", "magnitude", None),
        ):
            for f in (0.5, 0.9, 0.99):
                recs.append(
                    {
                        "dataset": "mnist",
                        "method": method,
                        "criterion": criterion,
                        "reference_criterion": reference,
                        "prediction": "mean",
                        "fraction": f,
                        "compression": 1 / (1 - f),
                        "error": 2 + 50 * f**8 + seed,
                        "ece": 0.01 + f / 10,
                    }
                )
    recs.append({**recs[0], "criterion": "native", "compression": 7.0, "dataset": "fmnist"})
    return pd.DataFrame(recs)


def test_tradeoff_figure_draws_error_and_ece_against_compression_from_records(tmp_path):
    path = tradeoff_figure(_synthetic_records(), tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert tradeoff_figure(pd.DataFrame(), tmp_path / "none.png") is None


def test_vidlicka_seed_is_the_reports_setting_at_small_and_paper_scale():
    small = compose_config(["experiment=vidlicka_seed", "scale=small", "method=bbb"])
    paper = compose_config(["experiment=vidlicka_seed", "scale=paper", "method=bbb"])
    for cfg in (small, paper):
        assert list(cfg.model.hidden) == [1200, 1200] and cfg.train.epochs == 100
        assert cfg.method.prior.pi == 0.25 and cfg.method.prior.neg_log_sigma1 == 0
        assert cfg.method.prior.neg_log_sigma2 == 2 and cfg.dataset.pixel_scale == 126
        assert cfg.method.optimizer._target_ == "torch.optim.Adam" and cfg.train.scheduler is None
    assert list(small.prune.fractions)[1:] == [0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99]
