"""How differently |μ|/σ and |μ| rank the weights of a trained Bayes-by-Backprop run.

Signal-to-noise pruning (Blundell et al. 2015, Sec. 5.1) keeps the weights of largest |μ|/σ with
σ = softplus(ρ); magnitude pruning keeps those of largest |μ|. Where σ is nearly the same for
every weight, the two orders agree and so do their pruned networks. For each run this prints,
per prunable layer, the 1st, 50th and 99th percentiles of σ and |μ|, then, over all layers
(global pruning), the share of the weights |μ|/σ keeps that |μ| keeps too, at each fraction
removed, and the correlation of log |μ| and log σ. Prints; asserts nothing.

    .venv/bin/python scripts/snr_vs_magnitude.py runs/bbb-mnist-mlp-1200-1200-small-s0-*
"""

from __future__ import annotations

import argparse

import torch

from bbbprune.layers import prunable_layers
from bbbprune.pruning.criteria import magnitude_scores, snr_scores
from bbbprune.run.checkpoints import load_run

QUANTILES = torch.tensor([0.01, 0.5, 0.99])


def percentiles(values: torch.Tensor) -> str:
    # torch.quantile takes at most 2^24 elements: a strided subsample keeps the spread
    step = max(1, values.numel() // (1 << 24) + 1)
    q = torch.quantile(values.flatten()[::step].double(), QUANTILES.double())
    return " / ".join(f"{x:.3g}" for x in q.tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run directories of BBB")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    args = parser.parse_args()
    for run in args.runs:
        _, _, model, _ = load_run(run)
        snr, mag = snr_scores(model), magnitude_scores(model)
        sigma = {n: m.weight_sigma().detach() for n, m in prunable_layers(model).items()}
        print(run)
        for name in snr:
            print(
                f"  {name}: sigma p1/p50/p99 {percentiles(sigma[name])};"
                f" |mu| p1/p50/p99 {percentiles(mag[name])}"
            )
        s = torch.cat([t.flatten() for t in snr.values()])
        m = torch.cat([t.flatten() for t in mag.values()])
        sd = torch.cat([t.flatten() for t in sigma.values()])
        for fraction in args.fractions:
            keep = max(1, round(s.numel() * (1 - fraction)))
            by_snr = torch.zeros(s.numel(), dtype=torch.bool)
            by_snr[torch.topk(s, keep).indices] = True
            by_mag = torch.zeros(s.numel(), dtype=torch.bool)
            by_mag[torch.topk(m, keep).indices] = True
            shared = (by_snr & by_mag).sum().item() / keep
            print(
                f"  {fraction:.0%} removed: {shared:.3f} of the weights |mu|/sigma keeps, |mu| keeps"
            )
        logs = torch.stack([m.clamp_min(1e-30).log(), sd.log()])
        print(f"  correlation of log |mu| and log sigma: {torch.corrcoef(logs)[0, 1].item():.3f}")


if __name__ == "__main__":
    main()
