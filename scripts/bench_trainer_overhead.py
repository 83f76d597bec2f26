"""Overhead of bbbprune's trainer against a bare PyTorch loop.

Both run one epoch over the same in-memory tensors (50,000 × 784 floats, MNIST-sized) with the
same 784-400-400-10 ReLU network, batch 128, Adam lr 1e-3, same shuffling. They alternate for
several rounds and the median epoch time of each is compared. Prints the ratio; asserts nothing.

    .venv/bin/python scripts/bench_trainer_overhead.py [--rounds 5]
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

N, D, H, C, BATCH = 50_000, 784, 400, 10, 128


def bare_epoch(model, optimizer, x, y, generator):
    model.train()
    perm = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), BATCH):
        idx = perm[i : i + BATCH]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
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
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
    opt_bare = torch.optim.Adam(bare.parameters(), lr=1e-3)
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
    print(f"threads: {torch.get_num_threads()}, rounds: {args.rounds}, epoch of {N} examples")
    for k, v in times.items():
        print(f"  {k:8s} median {med[k]:.3f} s   ({', '.join(f'{t:.3f}' for t in v)})")
    print(f"trainer / bare = {med['trainer'] / med['bare']:.3f}  (overhead target: <= 1.10)")


if __name__ == "__main__":
    main()
