"""Does the rebuilt (structured.shrink) SS-VI network give the masked network's outputs?
Usage: python scripts/check_ssvi_rebuild.py runs/<ssvi run dir> — applies the method's own PIP
rule, rebuilds the smaller net and compares logits and predictions on the whole test set, for
the posterior-mean weights γμ (prediction ``mean``) and for the pruned submodel's own posterior
mean μ (prediction ``conditional``, the layers' ``given_mask`` flag)."""

from __future__ import annotations

import sys

import torch

from bbbprune.data.tensors import load_tensors
from bbbprune.deploy.structured import kept_widths, shrink
from bbbprune.layers.spike_slab import spike_slab_layers
from bbbprune.pruning.masking import apply_masks
from bbbprune.run.checkpoints import load_run


def main(run_dir: str) -> None:
    cfg, method, model, _ = load_run(run_dir)
    data = load_tensors(cfg.dataset, "cpu", log=lambda *_: None)
    apply_masks(model, method.native_masks(model))
    model.eval()
    for given_mask, weights in ((False, "mean γμ"), (True, "conditional μ")):
        for layer in spike_slab_layers(model).values():
            layer.given_mask = given_mask
        small = shrink(model).eval()
        with torch.no_grad():
            a, b = model(data.x_test), small(data.x_test)
        same = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
        error = 100 * (b.argmax(-1) != data.y_test).float().mean().item()
        print(
            f"{run_dir} ({weights}): rebuilt widths {kept_widths(small)}, max |logit difference| "
            f"{(a - b).abs().max().item():.2e}, same prediction on {100 * same:.2f} % of the test "
            f"set, rebuilt test error {error:.2f} %"
        )


if __name__ == "__main__":
    main(sys.argv[1])
