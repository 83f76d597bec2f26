"""Does the rebuilt (structured.shrink) SS-VI network give the masked network's outputs?
Usage: python scripts/check_ssvi_rebuild.py runs/<ssvi run dir> — applies the method's own PIP
rule, rebuilds the smaller net and compares logits and predictions on the whole test set."""

from __future__ import annotations

import sys

import torch

from bbbprune.data import load_tensors
from bbbprune.prune import apply_masks
from bbbprune.runs import load_run
from bbbprune.structured import kept_widths, shrink


def main(run_dir: str) -> None:
    cfg, method, model, _ = load_run(run_dir)
    data = load_tensors(cfg.dataset, "cpu", log=lambda *_: None)
    apply_masks(model, method.native_masks(model))
    model.eval()
    small = shrink(model).eval()
    with torch.no_grad():
        a, b = model(data.x_test), small(data.x_test)
    same = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    print(
        f"{run_dir}: rebuilt widths {kept_widths(small)}, max |logit difference| "
        f"{(a - b).abs().max().item():.2e}, same prediction on {100 * same:.2f} % of the test set"
    )


if __name__ == "__main__":
    main(sys.argv[1])
