"""Stochastic-gradient MCMC as a torch optimizer: preconditioned SGHMC with a temperature and a
cyclic cosine step size (Ke & Fan 2022, arXiv 2210.12957, Sec. 2; seed 003).

Target. With the mean minibatch loss L(θ) (per-example units, what the trainer back-propagates)
and a Gaussian prior N(0, 1/(N·ε)) on every entry (ε: the entry's *weight decay*, per-example
units, N: training-set size), the tempered posterior is

    p_T(θ | D) ∝ exp(−N·U(θ)/T),  U(θ) = L(θ) + ½ Σ_j ε_j θ_j²,  ∇U = g + ε∘θ,

T = 1 the Bayesian posterior, T < 1 a "cold" one.

Preconditioner (the VB ↔ SGHMC equivalence). Ke & Fan's adaptive VB (Sec. 2.2, after their
Eq. 2) updates a Gaussian mean-field posterior N(μ, σ²) by the natural-gradient step
μ ← μ − l (σ²)^α ∇_μ L with the precision tracked as 1/σ² ← (1 − γ) / σ² + γ (g∘g + δ/N)
(Eq. 2: ∇_Σ L = 0 gives 1/σ² ≈ E[g²] + δ/N; α = ½ is Adam-like, α = 1 Newton-like). Once the
variance update is frozen and the weight noise w = μ + σ ε is folded into the iterate, the
algorithm is SGHMC whose mass matrix is the inverse of the diagonal preconditioner

    P = (v̂ + δ)^(−α),  v ← β₂ v + (1 − β₂) g∘g,  v̂ = v / (1 − β₂^k)          (here α = ``power``)

Dynamics. SGHMC (Chen et al. 2014) with mass matrix P⁻¹, friction matrix C and step h:
r ← r − h N∇U − h C P r + N(0, 2 C T h), θ ← θ + h P r. Substituting the velocity m = h P r, the
learning rate η = h²/N and the friction C = α_f/(h P) (a positive diagonal matrix, so allowed)
gives the update implemented here (the form of Zhang et al. 2020, cSG-MCMC, with P):

    m ← (1 − α_f) m − η P ∇U + sqrt(2 α_f η T P / N) ξ,   ξ ~ N(0, I)
    θ ← (θ + m) ∘ mask

whose stationary distribution is p_T(θ | D) for a fixed P as η → 0. The mask (a layer's
``weight_mask``, 0 for removed groups) keeps removed entries exactly zero, as in the authors'
θ ← (θ + τ∘m)∘hard_mask (published.md, Ke & Fan section). α_f = 1 − β₁ is ``friction``.

Step size. Cyclic cosine (Zhang et al. 2020, Eq. 1; published.md: C2 = ½ C2₀ (cos(π (k mod K/M)
/ (K/M)) + 1)): η_k = ½ η₀ (cos(π ((k mod K/M) / (K/M))) + 1) with K total steps and M cycles;
the low-step end of each cycle is where snapshots are taken. Without K (``total_steps`` None)
the step size is the constant η₀.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from ..errors import UserError


def cyclic_cosine(base: float, step: int, total_steps: int | None, cycles: int) -> float:
    """η_k = ½ η₀ (cos(π · (k mod K/M) / (K/M)) + 1), k = ``step`` (0-based), K/M the cycle length
    in steps (not rounded, so the M cycles exactly tile K steps)."""
    if not total_steps:
        return base
    length = total_steps / cycles
    return 0.5 * base * (math.cos(math.pi * math.fmod(step, length) / length) + 1.0)


class PreconditionedSGHMC(Optimizer):
    """Preconditioned SGHMC (module docstring). Per parameter group: ``lr`` η₀ (the cycle's peak
    step size, on the mean-loss gradient), ``friction`` α_f, ``temperature`` T, ``weight_decay``
    ε (a default; an entry-wise tensor in ``state[p]["weight_decay"]`` overrides it: the
    spike-and-slab method writes its groups' decays there), ``precond_decay`` β₂, ``power`` α,
    ``damping`` δ, ``n_train`` N, ``total_steps`` K and ``cycles`` M. ``step`` counts the steps
    taken (in the group, so it is saved with the optimizer state)."""

    def __init__(
        self,
        params,
        lr: float = 1e-4,
        friction: float = 0.1,
        temperature: float = 1.0,
        weight_decay: float = 0.0,
        precond_decay: float = 0.999,
        power: float = 0.5,
        damping: float = 1e-8,
        n_train: int | None = None,
        total_steps: int | None = None,
        cycles: int = 1,
    ):
        checks = {
            "lr": lr > 0,
            "friction": 0 < friction <= 1,
            "temperature": temperature >= 0,
            "weight_decay": weight_decay >= 0,
            "precond_decay": 0 <= precond_decay < 1,
            "power": 0 <= power <= 1,
            "damping": damping > 0,
            "cycles": int(cycles) >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise UserError(f"sampler option {name} out of range: {locals()[name]!r}")
        defaults = dict(
            lr=lr,
            base_lr=lr,
            friction=friction,
            temperature=temperature,
            weight_decay=weight_decay,
            precond_decay=precond_decay,
            power=power,
            damping=damping,
            n_train=n_train,
            total_steps=total_steps,
            cycles=int(cycles),
            step=0,
        )
        super().__init__(params, defaults)
        self.mask_of: dict[torch.Tensor, torch.nn.Module] = {}  # param → layer with weight_mask

    def configure(self, n_train: int, total_steps: int | None) -> None:
        """Set N and K (known to the trainer only once data are loaded)."""
        for group in self.param_groups:
            group["n_train"], group["total_steps"] = int(n_train), total_steps

    def attach_masks(self, pairs) -> None:
        """(parameter, layer) pairs: after each step the parameter (and its momentum) is
        multiplied by the layer's current ``weight_mask`` (when it has one)."""
        self.mask_of = {p: layer for p, layer in pairs}

    def current_lr(self) -> float:
        group = self.param_groups[0]
        return cyclic_cosine(group["base_lr"], group["step"], group["total_steps"], group["cycles"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["n_train"] is None:
                raise UserError("PreconditionedSGHMC needs n_train (call configure first)")
            k = group["step"]
            lr = cyclic_cosine(group["base_lr"], k, group["total_steps"], group["cycles"])
            group["lr"] = lr  # visible to loggers; an outer lr scheduler has no effect
            alpha, temp, n = group["friction"], group["temperature"], group["n_train"]
            beta2 = group["precond_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                    state["grad_sq"] = torch.zeros_like(p)
                m, v = state["momentum"], state["grad_sq"]
                decay = state.get("weight_decay", group["weight_decay"])
                grad_u = p.grad + decay * p
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                v_hat = v / (1 - beta2 ** (k + 1))
                precond = (v_hat + group["damping"]).pow(-group["power"])
                m.mul_(1 - alpha).addcmul_(precond, grad_u, value=-lr)
                if temp > 0:
                    noise = torch.randn_like(p).mul_((2 * alpha * lr * temp / n * precond).sqrt())
                    m.add_(noise)
                p.add_(m)
                layer = self.mask_of.get(p)
                if layer is not None and layer.weight_mask is not None:
                    p.mul_(layer.weight_mask)
                    m.mul_(layer.weight_mask)
            group["step"] = k + 1
        return loss
