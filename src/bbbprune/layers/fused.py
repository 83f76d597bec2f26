"""Fused CPU kernels for Bayes-by-Backprop sampling and its Monte Carlo KL, and for Sparse VD's KL.

Eager PyTorch spends most of a BBB step on element-wise work over every weight: drawing ε
(torch's CPU normal generator alone costs more than the layer's matmuls), softplus, the prior's
log-density and their backward passes. ``bbb_kernel.c`` does all of it in one pass forward and
one pass backward, drawing ε from a counter-based generator. It is
compiled once with the system C compiler into a per-machine cache and called through ctypes;
where no compiler is found (or on CUDA, or with float64), the layers use the eager path.

The numbers differ from the eager path only through the random stream (same distribution,
different draws); tests check the kernel's values and gradients against autograd on the same ε.

Sparse VD's KL (Molchanov et al. 2017, Eq. 14, or ARD's ½·log(1 + 1/α)) over every weight is
~15 element-wise operations forward and as many backward in eager PyTorch, most of a
LeNet-300-100 training step; ``svd_kl`` computes the sum and its gradient in one pass
(``SparseVDKL``). Only rounding differs from the eager path (no random numbers involved).

``pool_kernel.c`` is 2×2 max pooling with the results of torch's CPU max_pool2d, forward and
backward, in one pass each (``FusedMaxPool2x2``, used by bbbprune.nets.pooling).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

from .priors import LOG_SQRT_2PI, GaussianPrior, ScaleMixturePrior

SOURCES = [Path(__file__).with_name(name) for name in ("bbb_kernel.c", "pool_kernel.c")]
# Not -ffast-math (nor -Ofast, -funsafe-math-optimizations): with those gcc links crtfastmath into
# the shared object, and loading it turns on flush-to-zero / denormals-are-zero for the whole
# process (Python floats and every torch CPU kernel included). The specific flags below are what
# the loops need to vectorise; the cache key includes them, so a library built with other flags
# is never reused.
CFLAGS = [
    "-O3",
    "-march=native",
    "-mprefer-vector-width=512",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffinite-math-only",
    "-fno-signed-zeros",
    "-ffp-contract=fast",
    "-fopenmp",
    "-fPIC",
    "-shared",
]
LIBS = ["-lm"]
_lib: ctypes.CDLL | None | bool = None  # None: not tried yet; False: unavailable


def _cache_dir() -> Path:
    root = os.environ.get("BBBPRUNE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bbbprune"
    )
    return Path(root)


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def _machine_tag() -> str:
    """Cache key of the built library: source, compiler, flags and the CPU's feature flags."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        pass
    blob = b"".join(source.read_bytes() for source in SOURCES)
    blob += " ".join(CFLAGS + LIBS).encode() + flags.encode()
    blob += str(_compiler()).encode()
    blob += platform.machine().encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _build() -> Path:
    target = _cache_dir() / f"bbb_kernel-{_machine_tag()}.so"
    if target.exists():
        return target
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler found")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        subprocess.run(
            [cc, *CFLAGS, *map(str, SOURCES), "-o", str(out), *LIBS],
            check=True,
            capture_output=True,
            timeout=300,
        )
        os.replace(out, target)
    return target


def _load() -> ctypes.CDLL | None:
    global _lib
    if _lib is None:
        if os.environ.get("BBBPRUNE_NO_FUSED"):
            _lib = False
            return None
        try:
            lib = ctypes.CDLL(str(_build()))
        except (OSError, subprocess.SubprocessError) as exc:
            warnings.warn(
                f"fused BBB kernel unavailable ({exc}); using the eager path", stacklevel=3
            )
            _lib = False
            return None
        f, i64, u32, i32, p = (
            ctypes.c_float,
            ctypes.c_int64,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_void_p,
        )
        lib.bbb_normal.argtypes = [p, i64, u32, i32]
        lib.bbb_forward.argtypes = [p, p, p, p, p, i64, u32, i32, f, f, f, f, i32, p]
        lib.bbb_backward.argtypes = [p, p, p, p, p, f, i64, i32, f, f, f, f, i32, p, p]
        lib.svd_kl.argtypes = [p, p, i64, i32, f, f, f, i32, p, p, p]
        lib.maxpool2x2_forward.argtypes = [p, i64, i64, i64, p, i32]
        lib.maxpool2x2_backward.argtypes = [p, p, i64, i64, i64, p, i32]
        _lib = lib
    return _lib or None


def available() -> bool:
    return _load() is not None


def prior_constants(prior) -> tuple[int, float, float, float, float]:
    """(mixture?, h1, c1, h2, c2) with log p(w) = logaddexp(h1 w² + c1, h2 w² + c2)."""
    if isinstance(prior, ScaleMixturePrior):
        return 1, prior._h1, prior._c1, prior._h2, prior._c2
    if isinstance(prior, GaussianPrior):
        return 0, -0.5 / prior.sigma**2, -math.log(prior.sigma) - LOG_SQRT_2PI, 0.0, 0.0
    raise TypeError(f"no fused kernel for {prior!r}")


def supports(mu: torch.Tensor) -> bool:
    return mu.device.type == "cpu" and mu.dtype == torch.float32 and available()


def new_key() -> int:
    """A 32-bit key drawn from torch's global generator: seeded runs stay reproducible and a
    resumed run (which restores that generator) draws the same keys."""
    return int(torch.randint(0, 2**32, (1,), dtype=torch.int64).item())


# Below this many elements a layer's pass runs on one thread: starting OpenMP's team costs more
# than the loop (and, on a loaded machine, far more), e.g. for biases and small layers.
PARALLEL_MIN = 1 << 16


def _threads(n: int) -> int:
    return torch.get_num_threads() if n >= PARALLEL_MIN else 1


def _ptr(t: torch.Tensor | None):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def normal(shape, key: int) -> torch.Tensor:
    """The kernel's standard normal draws for ``key`` (what a sampled pass uses as ε)."""
    out = torch.empty(shape, dtype=torch.float32)
    _load().bbb_normal(_ptr(out), out.numel(), key, _threads(out.numel()))
    return out


class FusedSample(torch.autograd.Function):
    """(μ, ρ, mask) → (w = (μ + softplus(ρ)·ε)·mask, KL estimate log q(w) − log p(w))."""

    @staticmethod
    def forward(ctx, mu, rho, mask, key, consts):
        mu, rho = mu.contiguous(), rho.contiguous()
        mask = None if mask is None else mask.contiguous()
        w, eps = torch.empty_like(mu), torch.empty_like(mu)
        sums = (ctypes.c_double * 3)()
        n = mu.numel()
        _load().bbb_forward(
            _ptr(mu),
            _ptr(rho),
            _ptr(mask),
            _ptr(w),
            _ptr(eps),
            n,
            key,
            *consts,
            _threads(n),
            sums,
        )
        kl = -(sums[0] + 0.5 * sums[1] + n * LOG_SQRT_2PI) - sums[2]
        ctx.save_for_backward(mu, rho, mask, eps)
        ctx.consts = consts
        return w, torch.tensor(kl, dtype=mu.dtype)

    @staticmethod
    def backward(ctx, grad_w, grad_kl):
        mu, rho, mask, eps = ctx.saved_tensors
        grad_w = None if grad_w is None else grad_w.contiguous()
        c = 0.0 if grad_kl is None else float(grad_kl)
        grad_mu, grad_rho = torch.empty_like(mu), torch.empty_like(rho)
        _load().bbb_backward(
            _ptr(mu),
            _ptr(rho),
            _ptr(mask),
            _ptr(eps),
            _ptr(grad_w),
            c,
            mu.numel(),
            *ctx.consts,
            _threads(mu.numel()),
            _ptr(grad_mu),
            _ptr(grad_rho),
        )
        return grad_mu, grad_rho, None, None, None


class SparseVDKL(torch.autograd.Function):
    """(θ, log σ², ard, (k1, k2, k3)) → Σ KL of Sparse VD's weights (bbb_kernel.c, ``svd_kl``;
    k1-k3: the constants of Molchanov et al.'s Eq. 14): the gradient is computed in the same
    pass and scaled by dL/dKL in the backward pass."""

    @staticmethod
    def forward(ctx, theta, log_sigma2, ard: bool, constants):
        theta, log_sigma2 = theta.contiguous(), log_sigma2.contiguous()
        grad_theta, grad_ls2 = torch.empty_like(theta), torch.empty_like(log_sigma2)
        total = ctypes.c_double()
        n = theta.numel()
        _load().svd_kl(
            _ptr(theta),
            _ptr(log_sigma2),
            n,
            int(ard),
            *constants,
            _threads(n),
            _ptr(grad_theta),
            _ptr(grad_ls2),
            ctypes.byref(total),
        )
        ctx.save_for_backward(grad_theta, grad_ls2)
        return torch.tensor(total.value, dtype=theta.dtype)

    @staticmethod
    def backward(ctx, grad_kl):
        grad_theta, grad_ls2 = ctx.saved_tensors
        return grad_theta * grad_kl, grad_ls2 * grad_kl, None, None


class FusedMaxPool2x2(torch.autograd.Function):
    """x (N, C, H, W), H and W even → max_pool2d(x, 2) by ``pool_kernel.c``: the same outputs
    and gradients as torch's CPU kernel. The backward pass scans x again for the entry each
    window took (x is kept alive anyway: it is the ReLU's output, which the ReLU's backward pass
    needs)."""

    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        n, c, h, w = x.shape
        out = x.new_empty((n, c, h // 2, w // 2))
        _load().maxpool2x2_forward(_ptr(x), n * c, h, w, _ptr(out), _threads(x.numel()))
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        n, c, h, w = x.shape
        grad_in = torch.empty_like(x)
        _load().maxpool2x2_backward(
            _ptr(x), _ptr(grad_out), n * c, h, w, _ptr(grad_in), _threads(x.numel())
        )
        return grad_in
