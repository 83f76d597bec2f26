"""results/README.md (bbbprune.report.overview): headlines are cells of the rendered tables,
published numbers, wall times, figures; checked on hand-made records whose cells are known."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from bbbprune.errors import UserError
from bbbprune.report import overview
from bbbprune.report.overview import (
    figure_records,
    headline_of,
    primary_criteria,
    tradeoff_points,
    write_overview,
)
from bbbprune.report.render import (
    render_grouped_table,
    render_list_table,
    render_metrics_table,
    render_table,
)

REPO = Path(__file__).resolve().parents[1]
HEADLINED = [
    "blundell_table1",
    "blundell_table2",
    "vidlicka",
    "prasad",
    "molchanov_lenet",
    "molchanov_lenet5",
    "structured_lenet",
    "random_labels",
    "kefan_mlp",
    "kefan_lenet5",
    "saha_simulated",
    "ssvi_mnist",
    "calibration_mnist",
    "calibration_fmnist",
]


def rec(**fields) -> dict:
    base = {"prediction": "mean", "seed": 0, "dataset": "mnist", "model": "mlp-4-4"}
    return {**base, **fields}


def cell(table: str, label: str, column: int) -> str:
    """Cell ``column`` (0 = the label) of the row whose first cell is ``label``, read off the
    markdown by hand."""
    for line in table.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells and cells[0] == label:
            return cells[column]
    raise AssertionError(f"no row {label!r} in\n{table}")


# A rows x columns table (render_table): BBB at 50 % and 95 %, two seeds at 95 %.
TABLE = {
    "name": "t",
    "metric": "error",
    "format": "{:.2f}",
    "columns": {"field": "fraction", "values": [0.5, 0.95], "labels": ["50 %", "95 %"]},
    "fixed": {"method": "bbb"},
    "rows": [
        {"label": "by |w|", "select": {"criterion": "magnitude"}, "published": [2.0, 30.0]},
        {"label": "by |mu|/sigma", "select": {"criterion": "snr"}, "published": [2.1, 2.21]},
    ],
    "headline": {"row": 1, "column": 1, "label": "BBB at 95 %"},
}
TABLE_RECORDS = [
    rec(method="bbb", criterion="snr", fraction=0.5, error=2.0),
    rec(method="bbb", criterion="snr", fraction=0.95, error=1.0, seed=0),
    rec(method="bbb", criterion="snr", fraction=0.95, error=3.0, seed=1),
    rec(method="bbb", criterion="magnitude", fraction=0.95, error=40.0),
    rec(method="sgd", criterion="snr", fraction=0.95, error=99.0),  # not in the table (fixed)
]


def test_headline_is_the_rendered_cell_and_its_hand_computed_value():
    df = pd.DataFrame(TABLE_RECORDS)
    h = headline_of("t", TABLE, df)
    rendered = cell(render_table(TABLE, df), "by |mu|/sigma", 2)
    # mean of 1 and 3, sample std sqrt(2) = 1.41; the cell shows "ours / published"
    assert rendered == "2.00 ± 1.41 / 2.21"
    assert h.value == "2.00 ± 1.41" and h.published == "2.21" and h.label == "BBB at 95 %"
    # one seed: the table's "†" mark stays
    h0 = headline_of("t", {**TABLE, "headline": {"row": 1, "column": 0}}, df)
    assert h0.value == "2.00†" and h0.published == "2.10"
    assert h0.label == "by |mu|/sigma: error at 50 %"


def test_headline_of_a_split_table_takes_that_split_and_its_published_number():
    spec = {
        **TABLE,
        "split_by": "dataset",
        "split_values": ["mnist", "fmnist"],
        "rows": [
            {
                "label": "snr",
                "select": {"criterion": "snr"},
                "published": {"mnist": [1.5, 1.7], "fmnist": [10.5, 12.25]},
            }
        ],
        "headline": {"row": 0, "column": 1, "split": "fmnist"},
    }
    df = pd.DataFrame(
        TABLE_RECORDS
        + [rec(method="bbb", criterion="snr", fraction=0.95, error=11.0, dataset="fmnist")]
    )
    h = headline_of("t", spec, df)
    assert cell(render_table(spec, df, "fmnist"), "snr", 2) == "11.00† / 12.25"
    assert (h.value, h.published) == ("11.00†", "12.25")
    assert h.label.endswith("(dataset = fmnist)")
    # without split: the first of split_values
    first = headline_of("t", {**spec, "headline": {"row": 0, "column": 1}}, df)
    assert (first.value, first.published) == ("2.00 ± 1.41", "1.70")


def test_headline_of_metrics_grouped_and_list_layouts_equals_their_cells():
    df = pd.DataFrame(
        [
            rec(method="svd", criterion="native", error=1.9, compression=60.0, fraction=0.98),
            rec(
                method="svd", criterion="native", error=2.1, compression=70.0, fraction=0.97, seed=1
            ),
            rec(method="sgd", criterion="magnitude", error=1.6, compression=1.0, fraction=0.0),
            rec(method="bbb", criterion="snr", error=4.0, ece=0.02, fraction=0.9, seed=0),
            rec(method="bbb", criterion="snr", error=6.0, ece=0.04, fraction=0.9, seed=1),
            rec(method="bbb", criterion="snr", error=3.0, ece=0.01, fraction=0.5),
        ]
    )
    metrics = {
        "layout": "metrics",
        "columns": [
            {"label": "error %", "field": "error", "format": "{:.2f}"},
            {"label": "compression", "field": "compression", "format": "{:.0f}"},
        ],
        "rows": [
            {"label": "sgd", "select": {"method": "sgd", "fraction": 0.0}},
            {
                "label": "svd",
                "select": {"method": "svd", "criterion": "native"},
                "published": ["1.92", "68"],
            },
        ],
        "headline": {"row": 1, "column": 1},
    }
    h = headline_of("m", metrics, df)
    assert cell(render_metrics_table(metrics, df), "svd", 2) == "65 ± 7 / 68"
    assert (h.value, h.published, h.label) == ("65 ± 7", "68", "svd: compression")

    grouped = {
        "layout": "grouped",
        "group_by": ["method", "criterion", "fraction"],
        "columns": [
            {"label": "error %", "field": "error", "format": "{:.2f}"},
            {"label": "ECE", "field": "ece", "format": "{:.3f}"},
        ],
        "headline": {"select": {"method": "bbb", "criterion": "snr", "fraction": 0.9}, "column": 1},
    }
    h = headline_of("g", grouped, df)
    row = next(
        line
        for line in render_grouped_table(grouped, df).splitlines()
        if "| bbb | snr | 90 % |" in line
    )
    assert row.split(" | ")[-1].rstrip(" |") == "0.030 ± 0.014" == h.value
    assert h.published == "–"

    listed = {
        "layout": "list",
        "fixed": {"method": "bbb"},
        "sort_by": "seed",
        "columns": [
            {"label": "seed", "field": "seed"},
            {"label": "error", "field": "error", "format": "{:.1f}"},
        ],
        "headline": {"sort_by": "error", "row": 0, "column": 1},
    }
    assert headline_of("l", listed, df).value == "3.0"  # the lowest error of the list
    assert "| 0 | 3.0 |" in render_list_table(listed, df)


def test_no_headline_is_none_and_a_wrong_one_is_a_user_error():
    df = pd.DataFrame(TABLE_RECORDS)
    assert headline_of("t", {k: v for k, v in TABLE.items() if k != "headline"}, df) is None
    assert headline_of("t", None, df) is None
    with pytest.raises(UserError, match="table.headline.column must be in 0..1, got 2"):
        headline_of("t", {**TABLE, "headline": {"row": 0, "column": 2}}, df)
    with pytest.raises(UserError, match="table.headline.row must be in 0..1, got 5"):
        headline_of("t", {**TABLE, "headline": {"row": 5, "column": 0}}, df)


def test_primary_criterion_and_figure_records():
    df = pd.DataFrame(
        [
            rec(run="b0", method="bbb", criterion=c, fraction=f, error=e)
            for c, e in (("snr", 2.0), ("magnitude", 5.0), ("random", 50.0))
            for f in (0.0, 0.9)
        ]
        + [
            rec(
                run="b0",
                method="bbb",
                criterion="random_matched",
                reference_criterion="snr",
                fraction=0.9,
                error=70.0,
            ),
            rec(run="s0", method="sgd", criterion="magnitude", fraction=0.0, error=2.0),
            rec(run="s0", method="sgd", criterion="magnitude", fraction=0.9, error=30.0),
            rec(run="s0", method="sgd", criterion="random", fraction=0.9, error=80.0),
            rec(run="v0", method="svd", criterion="native", fraction=0.97, error=1.9),
            rec(run="v0", method="svd", criterion="log_alpha", fraction=0.0, error=1.8),
            # trained on shuffled labels: at chance before pruning
            rec(run="r0", method="sgd", criterion="magnitude", fraction=0.0, error=90.0),
            rec(run="r0", method="sgd", criterion="magnitude", fraction=0.9, error=90.0),
        ]
    )
    assert primary_criteria(df) == {"bbb": "snr", "sgd": "magnitude", "svd": "log_alpha"}
    # the same run read from two experiments' records counts once
    kept, at_chance = figure_records([df, df])
    assert at_chance == ["r0"]
    assert set(zip(kept["method"], kept["criterion"], strict=True)) == {
        ("bbb", "snr"),
        ("sgd", "magnitude"),
        ("svd", "log_alpha"),
    }
    points = tradeoff_points(kept).set_index(["method", "fraction"])
    assert points.loc[("sgd", 0.9), "error"] == 30.0  # not averaged with the chance run's 90
    assert points.loc[("bbb", 0.9), "compression"] == pytest.approx(10.0)
    assert points.loc[("bbb", 0.0), "compression"] == 1.0


def _results(tmp_path: Path) -> Path:
    """Two experiments' records, tables and figures, as `bbbprune table` leaves them."""
    results = tmp_path / "results"
    results.mkdir()
    records = [
        {
            **r,
            "run": f"{r['method']}-{r['dataset']}-s{r['seed']}",
            "commit": c,
            "date": d,
            "scale": "small",
        }
        for r, c, d in zip(
            TABLE_RECORDS
            + [
                rec(method="bbb", criterion="snr", fraction=0.0, error=1.5),
                rec(method="bbb", criterion="snr", fraction=0.0, error=1.5, seed=1),
                rec(method="bbb", criterion="snr", fraction=0.5, error=12.0, dataset="fmnist"),
                rec(method="bbb", criterion="snr", fraction=0.0, error=11.0, dataset="fmnist"),
            ],
            [
                "aaa111",
                "aaa111",
                "bbb222",
                "bbb222",
                "bbb222",
                "bbb222",
                "aaa111",
                "aaa111",
                "bbb222",
            ],
            ["2026-11-20T10:00:00+00:00"] + ["2026-11-25T12:00:00+00:00"] * 8,
            strict=True,
        )
    ]
    (results / "t.records.json").write_text(json.dumps(records))
    (results / "t.md").write_text("# t\n")
    (results / "t_loss_curves.png").write_bytes(b"png")
    (results / "t_long_loss_curves.png").write_bytes(b"png")  # another experiment's figure
    (results / "u.records.json").write_text(json.dumps(records[:1]))
    return results


def test_readme_without_times_shows_dashes_and_links(tmp_path):
    results = _results(tmp_path)
    path = write_overview({"t": TABLE, "u": None}, results, tmp_path / "no-such.tsv")
    text = path.read_text()
    assert path == results / "README.md"
    assert "- scale: **small**" in text
    assert "- records written by: aaa111, bbb222" in text
    assert "- dates of the records: 2026-11-20 to 2026-11-25" in text
    assert "- total wall time: – min" in text
    row_t = next(line for line in text.splitlines() if line.startswith("| [t](t.md)"))
    assert " | BBB at 95 % | 2.00 ± 1.41 | 2.21 | – | [loss_curves](t_loss_curves.png) |" in row_t
    row_u = next(line for line in text.splitlines() if line.startswith("| u"))
    assert row_u == "| u | – | – | – | – | – |"  # no headline, no table, no figure: dashes
    assert "t_long_loss_curves" not in text


def test_readme_times_and_figures_on_shared_axes(tmp_path, monkeypatch):
    results = _results(tmp_path)
    times = tmp_path / "times.tsv"
    times.write_text("t\t3600\nu\t90\ntotal\t9000\n")
    limits = {}
    real_save = overview.save_figure

    def spy(fig, path):
        ax = fig.axes[0]
        limits[path.name] = (ax.get_xlim(), ax.get_ylim(), ax.get_xscale())
        return real_save(fig, path)

    monkeypatch.setattr(overview, "save_figure", spy)
    text = write_overview({"t": TABLE, "u": None}, results, times).read_text()
    assert "- total wall time: 150.0 min" in text
    assert "| 2.21 | 60.0 |" in text and "| – | 1.5 | – |" in text
    for dataset in ("mnist", "fmnist"):
        png = results / f"overview_{dataset}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![overview_{dataset}](overview_{dataset}.png)" in text
    assert limits["overview_mnist.png"] == limits["overview_fmnist.png"]
    (xlow, xhigh), (ylow, yhigh), scale = limits["overview_mnist.png"]
    assert scale == "log" and xlow < 1.0 and xhigh > 20.0  # 95 % removed: compression 20
    assert ylow == 0.0 and yhigh == pytest.approx(1.05 * 99.0)  # the highest: sgd at 95 %
    assert not list(results.glob("*.tmp*"))


def test_bad_times_line_is_one_clear_error(tmp_path):
    times = tmp_path / "times.tsv"
    times.write_text("t\t60\nt 70\n")
    with pytest.raises(UserError, match=r"times.tsv, line 2: expected name<TAB>seconds"):
        overview.read_times(times)


def _experiments() -> list[str]:
    """Every experiment: those that declare a headline and those that inherit one."""
    return sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


@pytest.fixture
def hydra_conf():
    with initialize_config_module(config_module="bbbprune.conf", version_base="1.3"):
        yield


@pytest.mark.parametrize("name", _experiments())
def test_every_declared_headline_names_a_cell(hydra_conf, name):
    """The experiments' own headlines (and those they pass on to the experiments composed from
    them, e.g. blundell_table2 from blundell_table1) are in range, each a cell of a table with no records."""
    cfg = compose(config_name="config", overrides=[f"experiment={name}"])
    h = headline_of(name, OmegaConf.to_container(cfg.table, resolve=True), pd.DataFrame())
    if name in HEADLINED:
        assert h is not None and h.value == "–" and h.label


def test_overview_command_end_to_end(tmp_path, monkeypatch, capsys):
    """`bbbprune overview` composes vidlicka's table and writes README.md; its headline equals
    the 95 % cell of the |mu|/sigma row computed by hand; a misspelt experiment is one line."""
    from hydra.core.global_hydra import GlobalHydra

    from bbbprune.cli import main

    results = tmp_path / "results"
    results.mkdir()
    records = [
        rec(
            run="bbb-a",
            method="bbb",
            criterion="snr",
            fraction=f,
            error=e,
            commit="c1",
            date="2026-11-21",
        )
        for f, e in ((0.95, 2.5), (0.0, 2.0))
    ]
    (results / "vidlicka.records.json").write_text(json.dumps(records))
    monkeypatch.setattr(sys, "argv", ["bbbprune"])
    try:
        main(["overview", f"paths.results={results}", "overview.experiments=[vidlicka]"])
    finally:
        GlobalHydra.instance().clear()
    text = (results / "README.md").read_text()
    assert (
        "| vidlicka | BBB by \\|μ\\|/σ: test error (%) at 95 % removed | 2.50† | 2.21 | – | – |"
        in text
    )
    with pytest.raises(SystemExit) as exit_:
        main(["overview", f"paths.results={results}", "overview.experiments=[vidlika]"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bbbprune: error: unknown experiment 'vidlika' in overview.experiments; did you mean vidlicka?"
    ]
