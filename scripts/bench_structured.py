"""Structured compression you can measure: rebuild a pruned run as a physically smaller network
and time it against the masked dense one.

    .venv/bin/python scripts/bench_structured.py runs/<run dir> [--criterion native|snr|...]
                                                 [--fraction 0.9] [--repeats 50]

Loads the trained run, applies its own pruning rule (``native``, e.g. Sparse VD's log α ≥ 3) or a
criterion at a fraction, rebuilds it with ``bbbprune.deploy.structured.shrink`` (dead inputs, neurons and
filters removed, constants folded into biases), checks that the two give the same predictions on
the test set, and prints the kept architecture and the median CPU latency at batch 1 and batch 256
of both, side by side. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bbbprune.data.tensors import load_tensors
from bbbprune.deploy.complexity import median_latency_ms
from bbbprune.deploy.structured import kept_widths, shrink
from bbbprune.layers import prunable_layers
from bbbprune.pruning.criteria import prune_model
from bbbprune.pruning.masking import apply_masks
from bbbprune.run.checkpoints import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--criterion", default="native")
    parser.add_argument("--fraction", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    cfg, method, model, _ = load_run(args.run)
    model.eval()
    if args.criterion == "native":
        masks = method.native_masks(model)
        if masks is None:
            raise SystemExit(f"{method.name} has no pruning rule of its own; pass --criterion")
        apply_masks(model, masks)
    else:
        prune_model(model, args.criterion, args.fraction)
    small = shrink(model).eval()
    data = load_tensors(cfg.dataset, "cpu", log=lambda *_: None)
    with torch.inference_mode():
        a, b = model(data.x_test), small(data.x_test)
    dense_w = sum(m.point_weight().numel() for m in prunable_layers(model).values())
    small_w = sum(p.numel() for n, p in small.named_parameters() if n.endswith("weight"))
    print(
        f"run {args.run.name}: {args.criterion}"
        + ("" if args.criterion == "native" else f" at {args.fraction:.0%}")
    )
    print(f"  kept architecture  {'-'.join(map(str, kept_widths(small)))}")
    print(f"  weights            dense {dense_w:,}  rebuilt {small_w:,}")
    print(
        f"  max |output diff|  {(a - b).abs().max().item():.2e}; "
        f"same predictions: {bool((a.argmax(1) == b.argmax(1)).all())}"
    )
    print(f"  threads {torch.get_num_threads()}; median latency over {args.repeats} runs (ms):")
    for batch in (1, 256):
        x = data.x_test[:batch]
        ms = median_latency_ms({"dense": model, "small": small}, x, args.repeats)
        t_dense, t_small = ms["dense"], ms["small"]
        print(
            f"    batch {batch:3d}: masked dense {t_dense:7.3f}  rebuilt {t_small:7.3f}  "
            f"speed-up {t_dense / t_small:5.2f}×"
        )


if __name__ == "__main__":
    main()
