"""The benchmark scripts at tiny sizes: the LeNet-5-Caffe epoch benchmark reports the
multiply-adds of the network as counted by hand and one ratio line per method against its
target; ``scripts/benchmarks.py`` assembles every benchmark's output under a header."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bbbprune.layers import bayes_layers, kl_divergence

ROOT = Path(__file__).resolve().parents[1]


def lenet5_caffe_macs() -> int:
    """LeNet-5-Caffe on a 1×28×28 image, one multiply-add per weight per output position:
    conv1 20×1×5×5 on 24×24 outputs, conv2 50×20×5×5 on 8×8 outputs (after a 2×2 pool),
    fc 800→500 and 500→10."""
    conv1 = 20 * 1 * 5 * 5 * 24 * 24
    conv2 = 50 * 20 * 5 * 5 * 8 * 8
    fc = 800 * 500 + 500 * 10
    return conv1 + conv2 + fc


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_lenet5_epoch_reports_hand_counted_macs_and_ratios():
    assert lenet5_caffe_macs() == 2_293_000
    out = run("bench_lenet5_epoch.py", "--images", "100", "--rounds", "1", "--matmul-repeats", "1")
    macs = re.search(r"multiply-adds per image: ([\d,]+) MACs", out)
    assert macs, out
    assert int(macs.group(1).replace(",", "")) == lenet5_caffe_macs()
    ratios = re.findall(
        r"ratio trainer / bare = (\d+\.\d+)  \(target <= 1\.2x: (met|not met)\)", out
    )
    assert len(ratios) == 2, out  # SGD and Sparse VD
    for value, verdict in ratios:
        assert (float(value) <= 1.2) == (verdict == "met")
    assert "2 x MACs x 3 (forward + backward) x images / seconds" in out
    assert re.search(r"plain torch\.matmul 1024x1024 float32: \d+\.\d GFLOP/s", out), out
    assert "'fused': True" in out  # the project's default optimizer


def test_lenet5_epoch_refuses_a_bad_size():
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_lenet5_epoch.py"), "--images", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 2
    assert "--images" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow  # every benchmark at a tiny size, imports dominate (about a minute)
def test_benchmarks_file_is_assembled(tmp_path):
    out_file = tmp_path / "benchmarks.txt"
    run("benchmarks.py", "--tiny", "--out", str(out_file))
    text = out_file.read_text()
    assert re.search(r"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.M)
    assert re.search(r"^- commit: \S+$", text, re.M)
    assert re.search(r"^- machine: .+, \d+ cores, torch \S+, \d+ threads", text, re.M)
    order = [
        "$ python scripts/bench_trainer_overhead.py",
        "$ python scripts/bench_bbb_step.py",
        "$ python scripts/bench_lenet5_epoch.py",
        "python scripts/bench_export.py",
    ]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)
    assert re.search(r"overhead target <= 1\.10: (met|not met)", text)
    assert re.search(r"SGD step = \d+\.\d\d  \(target <= 1\.5x: (met|not met)\)", text)
    assert re.search(r"floor \(bbb-floor: .*\) / SGD step = \d+\.\d\d", text)
    assert len(re.findall(r"target <= 1\.2x: (met|not met)", text)) == 2
    assert not list(tmp_path.glob(".benchmarks.txt.*"))  # no temporary file left


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bbb_floor_sampler_moves_memory_only():
    """The BBB step's lower bound replaces each layer's sampler by w = μ + ρ, with dL/dμ = dL/dw
    and dL/dρ = dL/dw (a copy): no draws, no KL, and both parameters still reach Adam."""
    bench = load_script("bench_bbb_step")
    mu = torch.randn(3, 4, requires_grad=True)
    rho = torch.randn(3, 4, requires_grad=True)
    w = bench.FloorSample.apply(mu, rho)
    assert torch.equal(w, mu + rho)
    g = torch.randn(3, 4)
    w.backward(g)
    assert torch.equal(mu.grad, g) and torch.equal(rho.grad, g)

    model, loss_fn = bench.floor()
    model.train()
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    first = model(x)
    assert torch.equal(model(x), first)  # nothing random left
    assert kl_divergence(model).item() == 0.0
    loss_fn(x, y).backward()
    layers = bayes_layers(model)
    assert len(layers) == 3
    assert all(layer.weight_rho.grad is not None for layer in layers)
    assert all(torch.equal(layer.weight_rho.grad, layer.weight_mu.grad) for layer in layers)
