"""One LeNet-5-Caffe training epoch of bbbprune's trainer against a bare PyTorch loop.

For each method (SGD = bbbprune.methods.Deterministic, Sparse VD = bbbprune.methods.SparseVD,
Molchanov, Ashukha & Vetrov 2017) the network is LeNet-5-Caffe (conf/model/lenet5.yaml: conv
20-50 5×5, fc 800-500-10) built by bbbprune.nets.build_model with the method's layers. Two
copies with the same initialisation train on the same in-memory tensors (``--images`` random
MNIST-shaped images, batch 100, same shuffling):

  * trainer: bbbprune.run.epoch.run_epoch with the method (its loss terms included; Sparse VD
    runs at an epoch after its KL warm-up, so the KL term is computed at full weight);
  * bare: forward, cross-entropy, backward, optimizer step; nothing else.

The optimizer is the method's own (conf/method/<name>.yaml, ``optimizer``), built as the trainer
builds it (hydra instantiate, then ``method.make_optimizer``); ``fused=True`` is added when the
config does not set it (the project's default optimizer is fused Adam), ``--unfused-adam``
turns it off. The bare loop gets the same optimizer.

Rounds alternate (trainer, bare) per method after one warm-up epoch each; medians are reported
with the ratio trainer / bare against its target (<= 1.2). Also printed: the multiply-adds (MACs)
of one image through the dense network (bbbprune.deploy.complexity.count_macs), the achieved
GFLOP/s under the convention 2 × MACs × 3 (forward + backward ≈ 3 forward passes) × images /
seconds, and beside it the GFLOP/s of a plain float32 torch.matmul (1024 × 1024, median over
repeats taken within every round). Asserts nothing about time.

    .venv/bin/python scripts/bench_lenet5_epoch.py [--images 50000] [--rounds 5] [--unfused-adam]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from bench_trainer_overhead import bare_epoch  # scripts/ is on sys.path when run as a script
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bbbprune.data.tensors import TensorData
from bbbprune.deploy.complexity import count_macs
from bbbprune.methods import StepInfo, build_method
from bbbprune.nets.models import build_model
from bbbprune.run.epoch import run_epoch

CONF = Path(__file__).resolve().parents[1] / "conf"
SHAPE, C, BATCH = (1, 28, 28), 10, 100
METHODS = {"sgd": "SGD (Deterministic)", "svd": "Sparse VD"}
TARGET = 1.2
MATMUL_N = 1024


def method_and_optimizer_factory(name: str, fused: bool):
    """The method and the optimizer factory of conf/method/<name>.yaml, as the trainer builds them."""
    cfg = OmegaConf.load(CONF / "method" / f"{name}.yaml")
    method = build_method(cfg)
    opt_cfg = cfg.optimizer
    if "fused" not in opt_cfg and fused:
        opt_cfg.fused = True
    if not fused:
        opt_cfg.fused = False
    return method, instantiate(opt_cfg), OmegaConf.to_container(opt_cfg)


def matmul_seconds(a: torch.Tensor, b: torch.Tensor, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--matmul-repeats", type=int, default=5, help="matmuls per round")
    parser.add_argument(
        "--unfused-adam", action="store_true", help="the optimizer with fused=False"
    )
    args = parser.parse_args()
    if args.images < 1 or args.rounds < 1 or args.matmul_repeats < 1:
        parser.error("--images, --rounds and --matmul-repeats must be >= 1")

    torch.manual_seed(0)
    x = torch.rand(args.images, *SHAPE)
    y = torch.randint(0, C, (args.images,))
    data = TensorData("bench", x, y, x[:10], y[:10], x[:10], y[:10], C)
    model_cfg = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "lenet5.yaml"))

    runs, optimizer_settings = {}, None
    for name in METHODS:
        method, factory, optimizer_settings = method_and_optimizer_factory(
            name, not args.unfused_adam
        )
        spec = dict(model_cfg, input_shape=list(SHAPE), n_classes=C, dropout=method.dropout)
        torch.manual_seed(1)
        ours = build_model(spec, method.layer_factory())
        bare = copy.deepcopy(ours)
        # an epoch after any KL warm-up: the method's loss terms at full weight
        epoch = int(getattr(method, "warmup_end", 0))
        runs[name] = {
            "method": method,
            "epoch": epoch,
            "trainer": (ours, method.make_optimizer(ours, factory), torch.Generator()),
            "bare": (bare, factory(bare.parameters()), torch.Generator()),
        }
        for g in (runs[name]["trainer"][2], runs[name]["bare"][2]):
            g.manual_seed(2)
    dense = build_model(
        dict(model_cfg, input_shape=list(SHAPE), n_classes=C), runs["sgd"]["method"].layer_factory()
    )
    macs = count_macs(dense, SHAPE)

    def trainer_epoch(name):
        r = runs[name]
        model, opt, g = r["trainer"]
        run_epoch(model, r["method"], opt, data, BATCH, g, r["epoch"])

    def bare_run(name):
        model, opt, g = runs[name]["bare"]
        bare_epoch(model, opt, x, y, g, batch=BATCH)

    a, b = torch.rand(MATMUL_N, MATMUL_N), torch.rand(MATMUL_N, MATMUL_N)
    matmul_seconds(a, b, 2)  # warm-up
    for name in runs:  # one warm-up epoch each
        trainer_epoch(name)
        bare_run(name)
    times = {(name, kind): [] for name in runs for kind in ("trainer", "bare")}
    matmul: list[float] = []
    for _ in range(args.rounds):
        for name in runs:
            t0 = time.perf_counter()
            trainer_epoch(name)
            times[(name, "trainer")].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            bare_run(name)
            times[(name, "bare")].append(time.perf_counter() - t0)
        matmul += matmul_seconds(a, b, args.matmul_repeats)

    matmul_gflops = 2 * MATMUL_N**3 / statistics.median(matmul) / 1e9
    print(
        f"LeNet-5-Caffe (conv 20-50 5x5, fc 800-500-10), {args.images} random 1x28x28 images, "
        f"batch {BATCH}, {torch.get_num_threads()} threads, {args.rounds} rounds (1 warm-up "
        f"epoch each), optimizer {optimizer_settings}"
    )
    print(
        f"multiply-adds per image: {macs:,} MACs (dense network, conv and linear layers; "
        "bbbprune.deploy.complexity.count_macs)"
    )
    print(
        "GFLOP/s convention: 2 x MACs x 3 (forward + backward) x images / seconds, the "
        "dense MACs for every method; "
        f"plain torch.matmul {MATMUL_N}x{MATMUL_N} float32: {matmul_gflops:.1f} GFLOP/s "
        f"(median of {len(matmul)})"
    )
    flop_epoch = 2 * macs * 3 * args.images
    for name, label in METHODS.items():
        med = {k: statistics.median(times[(name, k)]) for k in ("trainer", "bare")}
        step = StepInfo(runs[name]["epoch"], 1, 1, args.images)
        terms = ", ".join(runs[name]["method"].loss_terms(runs[name]["trainer"][0], step)) or "none"
        print(f"{label} (trainer loss terms besides the NLL: {terms}):")
        for kind in ("trainer", "bare"):
            t = times[(name, kind)]
            print(
                f"  {kind:8s} median {med[kind]:8.3f} s  {flop_epoch / med[kind] / 1e9:7.1f} "
                f"GFLOP/s  ({', '.join(f'{v:.3f}' for v in t)})"
            )
        ratio = round(med["trainer"] / med["bare"], 3)  # judged as printed
        verdict = "met" if ratio <= TARGET else "not met"
        print(f"  ratio trainer / bare = {ratio:.3f}  (target <= {TARGET}x: {verdict})")


if __name__ == "__main__":
    main()
