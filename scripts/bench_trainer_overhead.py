"""Overhead of bbbprune's trainer against a bare PyTorch loop.

Both run one epoch over the same in-memory tensors (50,000 × 784 floats, MNIST-sized) with the
same 784-400-400-10 ReLU network, batch 128, the project's default optimizer (Adam lr 1e-3,
fused=True; ``--unfused-adam`` for fused=False), same shuffling. They alternate for several rounds
and the median epoch time of each is compared. Prints the ratio against its target (<= 1.10);
asserts nothing.

    .venv/bin/python scripts/bench_trainer_overhead.py [--rounds 5] [--examples 50000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from bbbprune.data.tensors import TensorData
from bbbprune.methods import Deterministic
from bbbprune.nets.models import build_model
from bbbprune.run.epoch import run_epoch

D, H, C, BATCH = 784, 400, 10, 128
TARGET = 1.10


def bare_epoch(model, optimizer, x, y, generator, batch: int = BATCH) -> None:
    """Forward, cross-entropy, backward, optimizer step over one shuffled pass (also used by
    bench_lenet5_epoch.py)."""
    model.train()
    perm = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch):
        idx = perm[i : i + batch]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=50_000, help="training examples per epoch")
    parser.add_argument("--unfused-adam", action="store_true", help="Adam with fused=False")
    args = parser.parse_args()
    if args.rounds < 1 or args.examples < 1:
        parser.error("--rounds and --examples must be >= 1")
    N = args.examples
    adam = {"lr": 1e-3, "fused": not args.unfused_adam}
    torch.manual_seed(0)
    x = torch.rand(N, 1, 28, 28)
    y = torch.randint(0, C, (N,))
    data = TensorData("bench", x, y, x[:10], y[:10], x[:10], y[:10], C)

    method = Deterministic("sgd")
    ours = build_model(
        {"name": "mlp", "hidden": [H, H], "input_shape": [1, 28, 28], "n_classes": C},
        method.layer_factory(),
    )
    bare = nn.Sequential(
        nn.Flatten(), nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, C)
    )
    opt_ours = torch.optim.Adam(ours.parameters(), **adam)
    opt_bare = torch.optim.Adam(bare.parameters(), **adam)
    g_ours, g_bare = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)

    times = {"trainer": [], "bare": []}
    # one warm-up epoch each, then alternate
    run_epoch(ours, method, opt_ours, data, BATCH, g_ours, 0)
    bare_epoch(bare, opt_bare, x, y, g_bare)
    for r in range(args.rounds):
        t0 = time.perf_counter()
        run_epoch(ours, method, opt_ours, data, BATCH, g_ours, r)
        times["trainer"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bare_epoch(bare, opt_bare, x, y, g_bare)
        times["bare"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"threads: {torch.get_num_threads()}, rounds: {args.rounds}, epoch of {N} examples, "
        f"Adam {adam}"
    )
    for k, v in times.items():
        print(f"  {k:8s} median {med[k]:.3f} s   ({', '.join(f'{t:.3f}' for t in v)})")
    ratio = round(med["trainer"] / med["bare"], 3)  # judged as printed
    verdict = "met" if ratio <= TARGET else "not met"
    print(f"trainer / bare = {ratio:.3f}  (overhead target <= {TARGET:.2f}: {verdict})")


if __name__ == "__main__":
    main()
