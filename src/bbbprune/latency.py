"""CPU latency of a forward pass, measured side by side: the median over repeated runs after a
warm-up, so that a few runs slowed by other work on a shared machine do not move it."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def median_latency_ms(model: nn.Module, x: torch.Tensor, repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time in milliseconds of ``model(x)`` under inference mode."""
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
    model.train(was_training)
    return statistics.median(times)


def speedups(
    reference: nn.Module, candidate: nn.Module, x: torch.Tensor, batches=(1, 256), repeats: int = 30
) -> dict[str, float]:
    """reference latency / candidate latency at each batch size (> 1: the candidate is faster),
    the two timed alternately on the same inputs (the first ``b`` rows of ``x``)."""
    out = {}
    for b in batches:
        xb = x[:b]
        ref = median_latency_ms(reference, xb, repeats)
        cand = median_latency_ms(candidate, xb, repeats)
        out[f"speedup_batch{b}"] = ref / cand
    return out
