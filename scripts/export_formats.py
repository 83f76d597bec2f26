"""Sizes and agreement of the export formats of one pruned run (docs/export.md, "Formats").

    .venv/bin/python scripts/export_formats.py RUN_DIR [CRITERION FRACTION]

Writes the run's export as .pt and .safetensors (means only, and with the posterior's σ) and as
ONNX; each is reloaded and checked against the masked model on the test set (export_run:
ONNX in onnxruntime). The safetensors file is then loaded once more with torch.load and pickle
switched off and compared with the .pt file's network. Prints bytes, test error and the largest
logit differences."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import torch

from bbbprune.data.tensors import load_tensors
from bbbprune.deploy.export import export_run
from bbbprune.deploy.export_loader import load_exported
from bbbprune.run.checkpoints import load_run


def reload_without_pickle(path: str):
    saved = (torch.load, pickle.load, pickle.loads, pickle.Unpickler)
    torch.load = pickle.load = pickle.loads = pickle.Unpickler = None
    try:
        return load_exported(path)
    finally:
        torch.load, pickle.load, pickle.loads, pickle.Unpickler = saved


def main(run_dir: str, criterion: str = "snr", fraction: str = "0.98") -> None:
    rows = {}
    for fmt, posterior in (
        ("pt", False),
        ("safetensors", False),
        ("pt", True),
        ("safetensors", True),
        ("onnx", False),
    ):
        loaded = load_run(Path(run_dir), torch.device("cpu"))
        info = export_run(
            Path(run_dir), loaded, criterion, float(fraction), fmt=fmt, posterior=posterior
        )
        rows[fmt + (" + posterior" if posterior else "")] = info
    cfg, *_ = load_run(Path(run_dir))
    x = load_tensors(cfg.dataset, "cpu", log=lambda *_: None).x_test
    with torch.inference_mode():
        st = reload_without_pickle(rows["safetensors"]["path"])(x)
        pt = load_exported(rows["pt"]["path"])(x)
    print(
        f"run {Path(run_dir).name}, {criterion} at {float(fraction):.0%}; dense float32 "
        f"reference {rows['pt']['dense_bytes']:,} bytes"
    )
    for name, info in rows.items():
        extra = ""
        if "posterior_bytes" in info:
            extra = (
                f"  sigma {info['posterior_bytes']:,} B, sampled error "
                f"{info['sampled_error']:.2f} %"
            )
        print(
            f"{name:24s} {info['export_bytes']:>10,} B  {info['export_size_percent']:5.1f} %  "
            f"error {info['error']:.2f} %  max|logit - masked| {info['max_abs_diff']:.1e}{extra}"
        )
    print(
        f"safetensors reloaded without pickle vs .pt: max|logit diff| {(st - pt).abs().max():.1e}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
