"""How the fused kernel is built and loaded: loading it leaves the process's floating-point
behaviour unchanged (no flush-to-zero / denormals-are-zero), its cache key follows the flags, and
without a C compiler the eager path takes over with the same results.

Each check runs in a fresh interpreter with its own build cache, so that neither a library loaded
by another test nor one cached by an earlier build decides the outcome."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from bbbprune.layers import fused


def _run(code: str, cache, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "BBBPRUNE_CACHE": str(cache), **env}
    full_env.pop("BBBPRUNE_NO_FUSED", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(
    not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")),
    reason="no C compiler for the kernel",
)
def test_loading_the_kernel_keeps_denormals(tmp_path):
    """IEEE 754 subnormals survive: 1e-310 (float64) and 1e-39 (float32) are below the smallest
    normal numbers (2.2e-308, 1.2e-38), and FTZ/DAZ would turn both products into 0."""
    result = _run(
        """
        import torch
        from bbbprune.layers import fused
        before = (1e-310 * 1.0, (torch.tensor([1e-39]) * 1).item())
        assert before[0] != 0.0 and before[1] != 0.0, before
        assert fused.available()
        x = float("1e-310")
        print(x * 1.0 != 0.0, (torch.tensor([1e-39], dtype=torch.float32) * 1).item() != 0.0)
        """,
        tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_cache_key_includes_the_build_flags(monkeypatch):
    """A library cached by a build with other flags (e.g. the former -ffast-math) is not reused."""
    tag = fused._machine_tag()
    monkeypatch.setattr(fused, "CFLAGS", [*fused.CFLAGS, "-ffast-math"])
    assert fused._machine_tag() != tag
    monkeypatch.undo()
    monkeypatch.setenv("CC", "/no/such/compiler-for-the-cache-key")
    assert fused._machine_tag() != tag
    assert "-ffast-math" not in fused.CFLAGS and "-Ofast" not in fused.CFLAGS


def test_without_a_compiler_the_eager_path_takes_over(tmp_path):
    """With no compiler (CC names a missing program, PATH holds none) and an empty cache, the
    kernel reports unavailable with a warning, and a layer asking for the fused path draws, sums
    its KL and differentiates exactly as the eager layer does under the same seed; Sparse VD
    layers sum their KL by the eager formula."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = _run(
        """
        import math, warnings
        import torch
        from bbbprune.layers import BayesLinear, fused, kl_divergence, sampling
        from bbbprune.layers.priors import ScaleMixturePrior
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not fused.available()
        assert any("eager path" in str(w.message) for w in caught), caught
        prior = ScaleMixturePrior(0.5, 1.0, math.exp(-6))
        torch.manual_seed(0)
        fast = BayesLinear(6, 4, prior, rho_init=-2.0, fused=True)
        slow = BayesLinear(6, 4, prior, rho_init=-2.0, fused=False)
        slow.load_state_dict(fast.state_dict())
        x = torch.randn(5, 6)
        outs = []
        for layer in (fast, slow):
            torch.manual_seed(1)
            with sampling(layer, True):
                y = layer(x)
            kl = kl_divergence(layer)
            (y.square().sum() + kl).backward()
            outs.append((y, kl, layer.weight_mu.grad, layer.weight_rho.grad))
        for a, b in zip(*outs, strict=True):
            assert torch.equal(a, b), (a, b)
        from bbbprune.layers.sparse_vd import LinearSVD, clipped_log_alpha, log_uniform_kl
        svd = LinearSVD(6, 4)
        expected = log_uniform_kl(clipped_log_alpha(svd.log_sigma2, svd.theta)).sum()
        assert torch.equal(svd.kl(), expected)  # Sparse VD's KL: the eager formula
        print("eager")
        """,
        tmp_path / "cache",
        CC=str(tmp_path / "no-such-cc"),
        PATH=str(empty_bin),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "eager"
    assert not any((tmp_path / "cache").glob("*.so"))
