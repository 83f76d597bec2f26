"""Choosing a configuration on validation under constraints (bbbprune.report.choice): the
lowest score among the groups whose checks all pass, checked on hand-made records."""

from __future__ import annotations

import pandas as pd
import pytest

from bbbprune.report.choice import CHOSEN, choose, render_choice_table

SPEC = {
    "group_by": "prior",
    "score": {"label": "val err", "field": "val_error", "select": {"fraction": 0.0}},
    "checks": [
        {
            "label": "rise at 95 %",
            "field": "val_error",
            "select": {"fraction": 0.95},
            "minus": {"fraction": 0.0},
            "max": 0.3,
        }
    ],
    "columns": [{"label": "test err", "field": "error", "select": {"fraction": 0.0}}],
}


def _records(prior, errors):
    """errors: {fraction: validation error}; the test error is 10 + the validation error."""
    return [
        {"prior": prior, "fraction": f, "val_error": e, "error": 10 + e} for f, e in errors.items()
    ]


def test_the_best_score_that_passes_its_checks_is_chosen():
    df = pd.DataFrame(
        _records("narrow", {0.0: 1.4, 0.95: 3.0})  # best score, rise 1.6 > 0.3: fails
        + _records("middle", {0.0: 1.6, 0.95: 1.8})  # rise 0.2: passes
        + _records("wide", {0.0: 1.9, 0.95: 1.9})  # passes, worse score
        + _records("unpruned only", {0.0: 1.0})  # its check has no record: fails
    )
    rows, chosen = choose(SPEC, df)
    assert chosen == "middle"
    assert [r["group"] for r in rows] == ["unpruned only", "narrow", "middle", "wide"]
    by_group = {r["group"]: r for r in rows}
    assert by_group["narrow"]["checks"] == [pytest.approx(1.6)]
    assert not by_group["narrow"]["passed"] and not by_group["unpruned only"]["passed"]
    assert by_group["middle"]["columns"] == [pytest.approx(11.6)]
    table = render_choice_table(SPEC, df)
    (chosen_line,) = [line for line in table.splitlines() if CHOSEN in line]
    assert chosen_line.startswith("| middle | 1.60 | +0.20 ✓ | 11.60 |")
    assert "Chosen on validation: **middle**" in table


def test_no_group_passing_means_no_choice():
    df = pd.DataFrame(_records("narrow", {0.0: 1.4, 0.95: 3.0}))
    assert choose(SPEC, df)[1] is None
    table = render_choice_table(SPEC, df)
    assert CHOSEN not in table and "none is chosen" in table
