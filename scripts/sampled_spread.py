"""How much the sampled predictive's test error moves between evaluations of one pruned run.

The sampled predictive averages S forward passes, each with fresh weight samples (new draws for
every batch), so one record's sampled error is itself a random number. This script prunes a
finished run once (criterion, fraction), then evaluates the mean weights once and the sampled
predictive ``--repeats`` times with different torch seeds, and prints each sampled error, their
mean and range, and the gap sampled − mean. Prints; asserts nothing.

    .venv/bin/python scripts/sampled_spread.py runs/bbb-mnist-...-ba2955e030 --fraction 0.98
"""

from __future__ import annotations

import argparse
import statistics

import torch

from bbbprune.data.tensors import load_tensors
from bbbprune.metrics import classification_metrics
from bbbprune.pruning.criteria import prune_model
from bbbprune.run.checkpoints import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run directory of a Bayesian method")
    parser.add_argument("--criterion", default="snr")
    parser.add_argument("--fraction", type=float, default=0.98)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    cfg, method, model, _ = load_run(args.run)
    data = load_tensors(cfg.dataset, torch.device("cpu"), log=lambda *_: None)
    prune_model(model, args.criterion, args.fraction, "global", seed=0)

    def error(mode: str) -> float:
        log_probs = method.predict_log_probs(model, data.x_test, mode)
        return classification_metrics(log_probs, data.y_test)["error"]

    mean = error("mean")
    sampled = []
    for i in range(args.repeats):
        torch.manual_seed(1000 + i)
        sampled.append(error("sampled"))
    gaps = [s - mean for s in sampled]
    print(f"run {args.run}: {args.criterion} pruning of {args.fraction:.0%}, test set")
    print(f"mean weights: {mean:.2f} % error")
    print(f"sampled (S={method.eval_samples}), {args.repeats} evaluations: ", end="")
    print(", ".join(f"{s:.2f}" for s in sampled))
    print(
        f"gap sampled - mean: mean {statistics.mean(gaps):+.2f}, "
        f"min {min(gaps):+.2f}, max {max(gaps):+.2f}, sample std {statistics.stdev(gaps):.2f}"
    )


if __name__ == "__main__":
    main()
