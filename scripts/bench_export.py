"""Compression you can measure: bytes on disk and CPU latency of `bbbprune export` files against
the dense float32 network, for pruned runs.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_export.py \\
        RUN_DIR:CRITERION:FRACTION [...] [--repeats 200] [--out results/benchmarks_export.txt]

CRITERION is a pruning criterion of the run's method (snr, magnitude, log_alpha, ...) or
``native`` (the method's own rule; FRACTION is then ignored). For every entry the script prunes
the trained run, writes three files to a temporary folder and reloads each with the plain-torch
loader (bbbprune.deploy.export_loader):

  * dense float32: the unpruned-format network, every weight stored (the baseline);
  * structured: the pruned network with dead inputs/units removed, weights dense;
  * export (auto): structured, then each layer dense or CSR, whichever is smaller (the default
    of ``bbbprune export``).

It checks each file's predictions on the test set against the masked model, and times the three
networks at batch 1 and 256, the three timed in turn within every repeat, reporting medians and
ratios to dense. With OMP_NUM_THREADS=1 the time is the CPU time of the thread
(bbbprune.deploy.export.latency_clock), which other processes on a shared machine do not inflate; the
load average is printed all the same. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from pathlib import Path

import torch

from bbbprune.data.tensors import load_tensors
from bbbprune.deploy.export import (
    dense_reference_state,
    export_state,
    median_latency_ms,
    save_export,
)
from bbbprune.deploy.export_loader import load_exported
from bbbprune.deploy.structured import kept_widths, shrink
from bbbprune.machine import usable_cores
from bbbprune.pruning.criteria import prune_model
from bbbprune.pruning.masking import apply_masks, sparsity
from bbbprune.run.checkpoints import load_run
from bbbprune.storage import git_commit, write_text

DEFAULT_ENTRIES = ["runs/bbb-mnist-mlp-400-400-s0-7201112d8c:snr:0.98"]


def bench(entry: str, repeats: int, tmp: Path) -> list[str]:
    run, criterion, fraction = entry.rsplit(":", 2)
    cfg, method, model, _ = load_run(Path(run), torch.device("cpu"))
    model.eval()
    if criterion == "native":
        apply_masks(model, method.native_masks(model))
    else:
        prune_model(model, criterion, float(fraction))
    sp = sparsity(model)["sparsity"]
    data = load_tensors(cfg.dataset, "cpu", log=lambda *_: None)
    files = {
        "dense float32": dense_reference_state(model),
        "structured": export_state(model, "dense"),
        "export (auto)": export_state(model, "auto"),
    }
    sizes, nets = {}, {}
    for i, (name, state) in enumerate(files.items()):
        sizes[name] = save_export(tmp / f"{i}.pt", state)
        nets[name] = load_exported(tmp / f"{i}.pt")
    with torch.inference_mode():
        masked = model(data.x_test)
        outs = {name: net(data.x_test) for name, net in nets.items()}
    dense = sizes["dense float32"]
    label = criterion if criterion == "native" else f"{criterion} at {float(fraction):.0%}"
    lines = [
        f"## {Path(run).name}: {method.name}, {label} (sparsity {sp:.4f}; "
        f"kept architecture {'-'.join(map(str, kept_widths(shrink(model))))})",
        "",
        "| file | bytes | % of dense | test error % | max abs logit diff vs masked | "
        "same predictions |",
        "|---|---|---|---|---|---|",
    ]
    for name, out in outs.items():
        err = 100 * (out.argmax(1) != data.y_test).float().mean().item()
        diff = "(unpruned)" if name == "dense float32" else f"{(out - masked).abs().max():.1e}"
        same = (
            "–" if name == "dense float32" else str(bool((out.argmax(1) == masked.argmax(1)).all()))
        )
        lines.append(
            f"| {name} | {sizes[name]:,} | {100 * sizes[name] / dense:.2f} | {err:.2f} | {diff} "
            f"| {same} |"
        )
    lines += [
        "",
        f"median latency over {repeats} repeats at batch 1, {repeats // 4} at batch 256 (ms, "
        f"{'CPU time of the thread' if torch.get_num_threads() == 1 else 'wall time'}), "
        "ratio = time / dense float32 time:",
        "",
        "| batch | "
        + " | ".join(nets)
        + " | "
        + " | ".join(f"{n} ratio" for n in nets if n != "dense float32")
        + " |",
        "|---|" + "---|" * (2 * len(nets) - 1),
    ]
    for batch in (1, 256):
        t = median_latency_ms(nets, data.x_test[:batch], repeats if batch == 1 else repeats // 4)
        ratios = [t[n] / t["dense float32"] for n in nets if n != "dense float32"]
        lines.append(
            f"| {batch} | "
            + " | ".join(f"{t[n]:.3f}" for n in nets)
            + " | "
            + " | ".join(f"{r:.2f}" for r in ratios)
            + " |"
        )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entries", nargs="*", default=DEFAULT_ENTRIES)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks_export.txt"))
    args = parser.parse_args()
    head = [
        "# Exported models: bytes on disk and CPU latency against the dense float32 network",
        "",
        f"- written by scripts/bench_export.py, commit {git_commit()}, "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())} "
        f"on {usable_cores()} cores",
        "- files are torch.save dicts (bbbprune.deploy.export_loader); the dense float32 file stores every "
        "weight and bias of the unpruned-format network; predictions compared on the 10,000 test "
        "images",
        "",
    ]
    body = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in args.entries:
            body += bench(entry, args.repeats, Path(tmp))
            print("\n".join(body[-14:]))
    tail = [f"- load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}", ""]
    write_text(args.out, "\n".join(head + body + tail))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
