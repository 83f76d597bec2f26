"""Simulated regression data with a known set of relevant features (Saha, Liu & Liang 2024, the
simulated experiments of their Figures 4–5; only the captions are at hand, so the design below is
ours where they say nothing).

Design (seeded by ``data_seed``, deterministic):

    x_i ~ Uniform(−1, 1)^D  (independent features),
    g(x) = Σ_{j=1..p} ψ_j f(x_j),   f(t) = e^{|t|} − 2t + sin(2πt)   (the caption's link),
    y = α · g(x) / sd(g) + ε,        ε ~ N(0, 1).

The relevant features are the first p (columns 0..p−1; a network has no notion of column order,
so their position is immaterial); the other D − p are pure noise. ψ_j are the true importances,
evenly spaced from ``psi_min`` to 1 (ψ = 1 for all when p = 1), so the correlation between the
true and the estimated importance is informative. sd(g) is the population standard deviation of
g, computed from a fixed reference sample of 200,000 draws, so α is the ratio of signal to noise
standard deviation: var(y) = α² + 1, and the best possible test MSE is 1 (the noise variance).
The likelihood is Gaussian with the true noise standard deviation s = 1 (``noise_std``).
Splits are independent draws: ``n_train``, ``n_val`` and ``n_test`` examples.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError

REFERENCE_DRAWS = 200_000


def link(t: np.ndarray) -> np.ndarray:
    """f(t) = e^{|t|} − 2t + sin(2πt) (Saha et al., Figures 4–5)."""
    return np.exp(np.abs(t)) - 2.0 * t + np.sin(2.0 * math.pi * t)


def importances(p: int, psi_min: float) -> np.ndarray:
    """ψ_1..ψ_p evenly spaced from ``psi_min`` up to 1."""
    return np.linspace(psi_min, 1.0, p) if p > 1 else np.ones(1)


def signal(x: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """g(x) = Σ_j ψ_j f(x_j) over the first len(ψ) columns."""
    return link(x[:, : len(psi)]) @ psi


def signal_std(psi: np.ndarray) -> float:
    """sd(g) under x ~ U(−1, 1)^p, from a fixed reference sample (seed 0)."""
    rng = np.random.default_rng(0)
    return float(signal(rng.uniform(-1.0, 1.0, (REFERENCE_DRAWS, len(psi))), psi).std())


def true_importance(d: int, p: int, psi_min: float) -> np.ndarray:
    """The importance of every feature: ψ_j for the relevant ones, 0 for the noise features."""
    out = np.zeros(d)
    out[:p] = importances(p, psi_min)
    return out


def generate(
    d: int, p: int, alpha: float, n: int, seed: int, psi_min: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """n draws of (x, y) from the design above, as float32 arrays (n, d) and (n,)."""
    if not 1 <= p <= d:
        raise UserError(f"simulated data need 1 <= relevant <= D, got relevant={p}, D={d}")
    if alpha < 0:
        raise UserError(f"simulated data need alpha >= 0, got {alpha}")
    psi = importances(p, psi_min)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, d))
    y = alpha * signal(x, psi) / signal_std(psi) + rng.standard_normal(n)
    return x.astype(np.float32), y.astype(np.float32)
