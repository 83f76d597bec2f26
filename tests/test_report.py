"""Tables: seed aggregation, cells beside published numbers, sweep expansion."""

from __future__ import annotations

import pandas as pd
import pytest

from bbbprune.errors import UserError
from bbbprune.report.jobs import sweep_overrides
from bbbprune.report.render import _fmt, network_order, render_runs, render_table
from bbbprune.report.table import fidelity_lines, results_folder


def test_seed_aggregation_is_mean_and_sample_std():
    # values 1, 2, 4: mean 7/3, sample std sqrt(((−4/3)² + (−1/3)² + (5/3)²) / 2) = sqrt(7/3)
    assert _fmt([1.0, 2.0, 4.0], "{:.4f}") == "2.3333 ± 1.5275"
    assert _fmt([1.5], "{:.2f}") == "1.50†"  # one seed only
    assert _fmt([], "{:.2f}") == "–"


def test_sweep_grid_is_the_cartesian_product():
    grid = sweep_overrides({"method": "sgd,bbb", "model.hidden": "[4,4],[8,8]"})
    assert grid == [
        ["method=sgd", "model.hidden=[4,4]"],
        ["method=sgd", "model.hidden=[8,8]"],
        ["method=bbb", "model.hidden=[4,4]"],
        ["method=bbb", "model.hidden=[8,8]"],
    ]


ARMS = [
    {"method": "sgd,dropout"},
    {"method": "bbb", "method.prior.pi": 0.25, "method.prior.neg_log_sigma2": 7},
    {"method": "bbb", "+method.moped_delta": 0.1, "method.eval_samples": "${moped_eval_samples}"},
]


def test_arms_are_a_union_of_grids_each_crossed_with_params():
    grid = sweep_overrides({"dataset": "mnist,fmnist"}, ARMS)
    assert len(grid) == 2 * 2 + 2 + 2
    assert ["dataset=mnist", "method=sgd"] in grid
    assert [
        "dataset=fmnist",
        "method=bbb",
        "method.prior.pi=0.25",
        "method.prior.neg_log_sigma2=7",
    ] in grid
    moped = [job for job in grid if "+method.moped_delta=0.1" in job]
    assert len(moped) == 2 and all(len(job) == 4 for job in moped)


def test_the_command_line_picks_arms_and_replaces_params():
    from bbbprune.run.sweep import sweep_jobs

    jobs = sweep_jobs({"dataset": "mnist", "seed": 0}, ARMS, ["method=sgd,bbb", "seed=1"])
    assert [j for j in jobs if "method=sgd" in j] == [["dataset=mnist", "method=sgd", "seed=1"]]
    assert len(jobs) == 3  # sgd and both BBB arms; dropout is not picked
    assert all("seed=1" in j and "seed=0" not in j for j in jobs)
    with pytest.raises(UserError, match="no arm"):
        sweep_jobs({}, ARMS, ["method=svd"])


def test_cells_pair_ours_with_the_published_number():
    df = pd.DataFrame(
        [
            {
                "method": "bbb",
                "criterion": "snr",
                "fraction": 0.0,
                "prediction": "mean",
                "error": 1.5,
            },
            {
                "method": "bbb",
                "criterion": "snr",
                "fraction": 0.5,
                "prediction": "mean",
                "error": 1.7,
            },
            {
                "method": "bbb",
                "criterion": "snr",
                "fraction": 0.5,
                "prediction": "mean",
                "error": 1.9,
            },
        ]
    )
    spec = {
        "metric": "error",
        "format": "{:.2f}",
        "fixed": {"prediction": "mean"},
        "columns": {"field": "fraction", "values": [0.0, 0.5, 0.9]},
        "rows": [
            {
                "label": "BBB",
                "select": {"method": "bbb", "criterion": "snr"},
                "published": [1.24, 1.24, 1.29],
            }
        ],
    }
    table = render_table(spec, df)
    assert table.splitlines()[-1] == "| BBB | 1.50† / 1.24 | 1.80 ± 0.14 / 1.24 | – / 1.29 |"


def test_a_pipe_inside_a_cell_does_not_split_it():
    """Labels such as "|W|/|W≠0|" or "by |μ|" stay one markdown cell: every row of a table has as
    many unescaped separators as the header."""
    import re

    from bbbprune.report.render import markdown_row

    row = markdown_row(["compression |W|/|W≠0|", "by |μ|", 3])
    assert row == "| compression \\|W\\|/\\|W≠0\\| | by \\|μ\\| | 3 |"
    assert len(re.findall(r"(?<!\\)\|", row)) == 4


def test_per_layer_sparsity_is_listed_in_forward_order():
    """Records store layers under sorted keys; the table lists them input side first."""
    lenet5 = ["classifier.0", "classifier.2", "features.0", "features.3"]
    assert sorted(lenet5, key=network_order) == [
        "features.0",
        "features.3",
        "classifier.0",
        "classifier.2",
    ]
    mlp = [f"net.{i}" for i in (1, 11, 3, 5, 7, 9)]
    assert sorted(mlp, key=network_order) == [f"net.{i}" for i in (1, 3, 5, 7, 9, 11)]
    resnet = ["fc", "stages.0.0.conv1", "stages.1.0.conv2", "stages.0.1.conv1", "stem"]
    assert sorted(resnet, key=network_order) == [
        "stem",
        "stages.0.0.conv1",
        "stages.0.1.conv1",
        "stages.1.0.conv2",
        "fc",
    ]


def test_a_table_states_the_fidelity_of_its_own_scale_only():
    spec = {"fidelity": {"small": "further from the paper than the 60-epoch version"}}
    assert fidelity_lines(spec, "small") == [
        "- fidelity at this scale: further from the paper than the 60-epoch version"
    ]
    assert fidelity_lines(spec, "paper") == []
    assert fidelity_lines({}, "small") == []


def test_tables_outside_the_default_list_and_scale_never_land_among_the_default_tables():
    from omegaconf import OmegaConf

    def folder(scale, table):
        return results_folder(
            OmegaConf.create({"paths": {"results": "r"}, "scale": {"name": scale}, "table": table})
        ).as_posix()

    assert folder("small", {"name": "vidlicka"}) == "r"
    assert folder("smoke", {"name": "vidlicka"}) == "r/smoke"
    assert folder("small", {"name": "kefan_mlp_choice", "folder": "searches"}) == "r/searches"
    assert folder("paper", {"name": "vidlicka_seed", "folder": "seeds"}) == "r/seeds/paper"
    assert folder("small", None) == "r"  # the overview: no experiment


def test_comparison_sentences_are_computed_from_the_records_paired_by_seed():
    """At 90 %: the baseline (sgd by |w|) has errors 10 and 12 on seeds 0 and 1, mean 11. Each
    row is set against the baseline over its own seeds: bbb by snr 8 on seed 0 against 10 (-2,
    40 s extra), laplace 20 on seed 0 (+10), svd 11.5 on seed 0 (+1.5), ard 9 and 11 on seeds 0
    and 1 against 11 (-1; its seed 7 has no baseline and is left out); dropout, on seed 5 only,
    shares no seed and is left out. At 50 % no
    baseline record: no sentence. The own rule (native) takes no part."""
    from bbbprune.report.comparison import comparison_lines

    rows = [
        ("sgd", "magnitude", 0.9, 0, 10.0, 0.0),
        ("sgd", "magnitude", 0.9, 1, 12.0, 0.0),
        ("bbb", "snr", 0.9, 0, 8.0, 40.0),
        ("laplace", "snr", 0.9, 0, 20.0, 5.0),
        ("svd", "log_alpha", 0.9, 0, 11.5, 30.0),
        ("svd", "native", 0.9, 0, 1.0, 30.0),
        ("ard", "log_alpha", 0.9, 0, 9.0, 30.0),
        ("ard", "log_alpha", 0.9, 1, 11.0, 30.0),
        ("dropout", "magnitude", 0.9, 5, 50.0, 0.0),
        ("ard", "log_alpha", 0.9, 7, 99.0, 30.0),  # seed 7: not the baseline's, left out
        ("bbb", "snr", 0.5, 0, 2.0, 40.0),
    ]
    df = pd.DataFrame(rows, columns=["method", "criterion", "fraction", "seed", "error", "extra"])
    spec = {
        "group_by": ["method", "criterion", "fraction"],
        "comparison": {
            "metric": "error",
            "label": "test error %",
            "baseline": {"method": "sgd", "criterion": "magnitude"},
            "baseline_label": "SGD by |w|",
            "fractions": [0.5, 0.9],
            "cost": "extra",
            "cost_label": "s extra",
        },
    }
    lines = comparison_lines(spec, df)
    assert lines[0].startswith("What the records show") and lines[-1] == ""
    assert lines[2:-1] == [
        "- At 90 % removed: SGD by |w| 11.00 (test error %, seeds 0, 1); of the 4 other rows, "
        "each against it over its own seeds, 2 do better and 2 worse (1 sharing no seed with "
        "it left out). Best: method bbb, criterion snr, 8.00 (-2.00 against 10.00 on seed 0, "
        "40 s extra). Worst: method laplace, criterion snr, 20.00 (+10.00 against 10.00 on "
        "seed 0)."
    ]
    spec["comparison"]["higher_is_better"] = True
    flipped = comparison_lines(spec, df)[2]
    assert (
        "2 do better and 2 worse (1 sharing no seed with it left out). Best: method laplace"
        in flipped
    )
    assert "Worst: method bbb" in flipped
    assert comparison_lines({"group_by": ["method"]}, df) == []


def test_the_runs_section_reads_the_sampled_error_of_the_unpruned_record():
    """Training keeps the mean weights' test metrics; the sampled predictive's error of a run is
    its fraction-0 sampled record's without fine-tuning (older runs kept it in metrics.json); a
    run whose only sampled record is the pruned network's (``prune.predictions=native``) has
    none."""

    history = [{"wall_time_s": 1.0}]
    runs = [
        {"run": "bbb-a", "epochs": 1, "parameters": 10, "history": history,
         "test": {"mean": {"error": 2.0}}},
        {"run": "sgd-b", "epochs": 1, "parameters": 10, "history": history,
         "test": {"mean": {"error": 3.0}}},
        {"run": "old-c", "epochs": 1, "parameters": 10, "history": history,
         "test": {"mean": {"error": 4.0}, "sampled": {"error": 3.5}}},
        {"run": "svd-d", "epochs": 1, "parameters": 10, "history": history,
         "test": {"mean": {"error": 5.0}}},
    ]  # fmt: skip
    records = pd.DataFrame(
        [
            {"run": "bbb-a", "criterion": "snr", "fraction": 0.0, "prediction": "sampled", "error": 1.5, "finetune_epochs": 0},
            {"run": "bbb-a", "criterion": "snr", "fraction": 0.5, "prediction": "sampled", "error": 9.0, "finetune_epochs": 0},
            {"run": "bbb-a", "criterion": "snr", "fraction": 0.0, "prediction": "mean", "error": 2.0, "finetune_epochs": 0},
            # fine-tuned after pruning nothing: no longer the trained network
            {"run": "bbb-a", "criterion": "magnitude", "fraction": 0.0, "prediction": "sampled", "error": 0.5, "finetune_epochs": 20},
            {"run": "sgd-b", "criterion": "magnitude", "fraction": 0.0, "prediction": "mean", "error": 3.0, "finetune_epochs": 0},
            {"run": "svd-d", "criterion": "native", "fraction": 0.94, "prediction": "sampled", "error": 6.0, "finetune_epochs": 0},
        ]
    )  # fmt: skip
    rows = {line.split(" | ")[0][2:]: line for line in render_runs(runs, records).splitlines()[2:]}
    assert rows["bbb-a"].endswith("| 2.00 | 1.50 |")
    assert rows["sgd-b"].endswith("| 3.00 | – |")
    assert rows["old-c"].endswith("| 4.00 | 3.50 |")
    assert rows["svd-d"].endswith("| 5.00 | – |")
