"""``bbbprune table`` reads records only: with every checkpoint and the dataset deleted after
training, the table and its figures (including the ones drawn from the weights and masks of the
trained models) are still written, from the runs' records and analyses."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import smoke_overrides
from test_cli import run


@pytest.mark.slow  # end to end through the command line (about 20 s): make test-all
def test_table_over_records_only(tmp_path, data_root):
    common = smoke_overrides(tmp_path, data_root)
    out = run("train", "-m", "experiment=structured_lenet", *common)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dirs = sorted(p for p in (tmp_path / "runs").iterdir() if (p / "config.yaml").exists())
    assert len(run_dirs) == 6  # svd and svd_group, three seeds each
    for run_dir in run_dirs:
        masks = json.loads((run_dir / "analyses" / "first_layer_masks.json").read_text())
        assert len(masks["result"]["per_pixel"]) == 784
        log_alpha = json.loads((run_dir / "analyses" / "log_alpha.json").read_text())
        for layer in log_alpha["result"]["layers"]:  # a histogram counts every weight once
            assert len(layer["edges"]) == len(layer["counts"]) + 1
        (run_dir / "checkpoint.pt").unlink()
    shutil.rmtree(data_root)

    out = run("table", "experiment=structured_lenet", *common)
    assert out.returncode == 0, out.stderr[-2000:]
    table = (tmp_path / "results" / "smoke" / "structured_lenet.md").read_text()  # by scale
    assert "## Missing" not in table
    for figure in ("log_alpha_histograms", "first_layer_masks"):
        assert (
            tmp_path / "results" / "smoke" / f"structured_lenet_{figure}.png"
        ).stat().st_size > 0
        assert f"structured_lenet_{figure}.png" in table
