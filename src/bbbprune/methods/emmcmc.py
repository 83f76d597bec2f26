"""EM-MCMC with a spike-and-slab group Gaussian prior (Ke & Fan 2022, arXiv 2210.12957; seed 003):
one run samples the weights with preconditioned SGHMC (bbbprune.methods.emmcmc_samplers) and, after a warm-up,
runs an EM step at the end of every epoch that switches each group's weight decay between slab
and spike and removes groups for good. No retraining.

Prior (Xu & Ghosh 2015 group spike-and-slab; Ročková & George 2014 EMVS): the weights w_g of group
g (bbbprune.methods.emmcmc_groups: an input column of a linear layer, an output filter of a convolution) are

    w_g | γ_g ~ γ_g N(0, σ₁² I) + (1 − γ_g) N(0, σ₀² I),   γ_g ~ Bernoulli(π_l),  π_l ~ Beta(a, b)

per layer l, with σ₁² = 1/(N ε₁) (slab, weight decay ε₁ = ``slab_decay``) and σ₀² = 1/(N ε₀)
(spike, ε₀ = ``spike_decay`` > ε₁), N the training-set size (published.md: "slab and spike
variances 1/(N·eps1) and 1/(N·eps0)").

E-step. Given the current sample w, the posterior inclusion probability of group g with d_g live
entries is p_g = P(γ_g = 1 | w_g, π_l) = π N(w_g; 0, σ₁²I) / (π N(w_g; 0, σ₁²I) + (1 − π)
N(w_g; 0, σ₀²I)), i.e. p_g = sigmoid(ℓ_g) with log-odds

    ℓ_g = logit π_l + (d_g / 2) log(σ₀² / σ₁²) − (‖w_g‖² / 2)(1/σ₁² − 1/σ₀²)
        = logit π_l + (d_g / 2) log(ε₁ / ε₀) + (N ‖w_g‖² / 2)(ε₀ − ε₁).

M-step. π_l = (Σ_g p_g + a − 1) / (G_l + a + b − 2) (the Beta(a, b) MAP, G_l live groups), and
the weight decay of every entry of group g becomes the expected prior precision (per example)
E[1/(N σ²_γ)] = p_g ε₁ + (1 − p_g) ε₀ (EMVS's M-step weights): a soft switch, in practice a hard
one because p_g is almost always within 1e-6 of 0 or 1.

Per-layer decays (``layer_decays``). The prior may differ between layers: layer l has its own
(ε₁_l, ε₀_l), hence σ₁²_l = 1/(N ε₁_l) and σ₀²_l = 1/(N ε₀_l); the E-step and M-step above are
unchanged, layer by layer. Its slab threshold on a group's mean square (ℓ_g = 0 with π = ½) is

    r_l*² = ‖w_g‖²/d_g = log(ε₀_l/ε₁_l) / (N (ε₀_l − ε₁_l)),

so one pair (ε₁, ε₀) for every layer gives every layer the same r*: the output layer's columns
(large weights, 10 entries) then never fall in the spike and conv1's filters never do. Multiplying
both decays of layer l by c_l keeps their ratio and divides r_l*² by c_l. ``layer_decays`` maps a
layer's name, its role ``output`` (the last prunable layer), or its kind (``conv``, ``linear``) to
``{slab: ε₁_l, spike: ε₀_l}`` (either may be left out) and/or ``scale: c_l`` (a factor on both);
the first key that matches wins in that order, and unmatched layers use ``slab_decay`` and
``spike_decay`` (the authors use one pair for convolutions and another for fully connected
layers, published.md). Before the first EM step every weight of layer l has decay ε₁_l.

Removal (the pruning criterion). A group is removed for good when it is in the spike (p_g < ½)
and its weights have collapsed: mean square ‖w_g‖²/d_g < ``prune_threshold`` · σ₀². Its mask
entries are set to 0 (the layer multiplies its weight by ``weight_mask``, and the sampler
multiplies the parameter by the mask after every step, so the group stays exactly zero). In an
MLP, removing input column j of layer l+1 also removes hidden unit j of layer l: its incoming row
is masked too (nothing reads it any more). This stands in for the authors' two thresholds on
mean w² (soft: spike; hard: removed) with the E-step and a threshold in units of σ₀².

Prediction modes: ``mean`` — the last sample (one deterministic pass); ``ensemble`` — the average
predictive of the snapshots taken at the low-step-size end of every cycle that ends after the
EM warm-up, each evaluated under the current masks (so the ensemble has the sparsity of the
final network).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..errors import UserError
from ..layers import MaskedConv2d, MaskedLinear, prunable_layers
from ..nets.factory import LayerFactory
from ..nets.models import MLP
from .base import Method, StepInfo
from .emmcmc_groups import expand_groups, group_sum
from .emmcmc_samplers import PreconditionedSGHMC


def inclusion_log_odds(
    sum_sq: torch.Tensor,
    size: torch.Tensor,
    pi: float,
    slab_var: float,
    spike_var: float,
) -> torch.Tensor:
    """ℓ_g = logit π + (d_g/2) log(σ₀²/σ₁²) − (‖w_g‖²/2)(1/σ₁² − 1/σ₀²) (module docstring)."""
    return (
        math.log(pi / (1 - pi))
        + 0.5 * size * math.log(spike_var / slab_var)
        - 0.5 * sum_sq * (1 / slab_var - 1 / spike_var)
    )


def snapshot_epochs(epochs: int, cycles: int) -> list[int]:
    """0-based epochs whose end is the low-step-size end of a cycle: the last epoch ending at or
    before each cycle boundary c·E/M (c = 1..M)."""
    return sorted({max(math.floor(c * epochs / cycles) - 1, 0) for c in range(1, cycles + 1)})


class EMMCMC(Method):
    """Ke & Fan's EM-MCMC (module docstring). ``epochs`` is the length of training (the cycle
    boundaries and the EM start depend on it); ``em_start`` is the first (0-based) epoch whose end
    runs the EM step (null: the epoch after the first cycle; with one cycle, epoch E // 4)."""

    criteria = ("magnitude", "random")
    prediction_modes = ("mean", "ensemble")

    def __init__(
        self,
        name: str,
        epochs: int,
        cycles: int = 4,
        slab_decay: float = 2e-4,
        spike_decay: float = 5e-2,
        beta_a: float = 1.0,
        beta_b: float = 1.0,
        prior_inclusion: float = 0.5,
        em_start: int | None = None,
        prune_threshold: float = 0.1,
        layer_decays=None,
        criteria=None,
        dropout: float = 0.0,
    ):
        super().__init__(name, dropout, criteria)
        self.epochs, self.cycles = int(epochs), int(cycles)
        if self.epochs < 1 or self.cycles < 1:
            raise UserError(f"method.epochs and method.cycles must be >= 1, got {epochs}, {cycles}")
        self.cycles = min(self.cycles, self.epochs)
        self.slab_decay, self.spike_decay = float(slab_decay), float(spike_decay)
        if not 0 < self.slab_decay < self.spike_decay:
            raise UserError(
                "method.slab_decay and method.spike_decay must satisfy 0 < slab < spike (the "
                f"spike is the narrower prior), got {slab_decay} and {spike_decay}"
            )
        if float(beta_a) < 1 or float(beta_b) < 1:
            raise UserError(f"method.beta_a, beta_b must be >= 1, got {beta_a}, {beta_b}")
        self.beta_a, self.beta_b = float(beta_a), float(beta_b)
        if not 0 < float(prior_inclusion) < 1:
            raise UserError(f"method.prior_inclusion must be in (0, 1), got {prior_inclusion}")
        self.prior_inclusion = float(prior_inclusion)
        if em_start is None:  # after the first cycle; with one cycle, after a quarter of it
            em_start = snapshot_epochs(self.epochs, self.cycles)[0] + 1
            em_start = self.epochs // 4 if self.cycles == 1 else em_start
        self.em_start = int(em_start)
        if self.epochs > 1 and not 0 <= self.em_start < self.epochs:
            raise UserError(
                f"method.em_start must be an epoch of the training (0..{self.epochs - 1}), got "
                f"{em_start}: a warm-up as long as the training never prunes"
            )
        self.em_start = min(self.em_start, self.epochs - 1)
        self.prune_threshold = float(prune_threshold)
        if self.prune_threshold < 0:
            raise UserError(f"method.prune_threshold must be >= 0, got {prune_threshold}")
        self.layer_decays = {str(k): dict(v) for k, v in dict(layer_decays or {}).items()}
        for key, spec in self.layer_decays.items():
            unknown = set(spec) - {"slab", "spike", "scale"}
            if unknown:
                raise UserError(
                    f"method.layer_decays.{key} takes slab, spike and scale, got {sorted(unknown)}"
                )
            slab, spike = self._decays_from(spec)
            if not 0 < slab < spike:
                raise UserError(
                    f"method.layer_decays.{key} must give 0 < slab < spike, got {slab} and {spike}"
                )
        self.inclusion_prior: dict[str, float] = {}  # π_l per layer (M-step)
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.optimizer: PreconditionedSGHMC | None = None

    # ---- network and sampler -------------------------------------------------------------
    def layer_factory(self) -> LayerFactory:
        return LayerFactory(
            linear=lambda i, o: MaskedLinear(i, o),
            conv=lambda i, o, k, stride=1, padding=0: MaskedConv2d(i, o, k, stride, padding),
        )

    def make_optimizer(self, model: nn.Module, optimizer_factory) -> torch.optim.Optimizer:
        optimizer = optimizer_factory(model.parameters())
        if not isinstance(optimizer, PreconditionedSGHMC):
            raise UserError(
                f"method {self.name} needs method.optimizer._target_: "
                f"bbbprune.methods.emmcmc_samplers.PreconditionedSGHMC, got {type(optimizer).__name__}"
            )
        for group in optimizer.param_groups:
            group["weight_decay"] = self.slab_decay  # biases and, before the EM, every weight
            group["cycles"] = self.cycles
        optimizer.attach_masks((m.weight, m) for m in prunable_layers(model).values())
        for name, layer in prunable_layers(model).items():  # the slab until the first EM step
            optimizer.state[layer.point_weight()]["weight_decay"] = self.layer_decay_pair(
                model, name
            )[0]
        self.optimizer = optimizer
        return optimizer

    def loss_terms(self, model: nn.Module, step: StepInfo) -> dict[str, torch.Tensor]:
        """No extra loss: the prior enters through the sampler's weight decays. Tells the sampler
        N and the total number of steps K (for the cyclic schedule)."""
        if self.optimizer is not None:
            self.optimizer.configure(step.n_train, self.epochs * step.n_batches)
        return {}

    # ---- EM step ---------------------------------------------------------------------------
    def _decays_from(self, spec: dict) -> tuple[float, float]:
        scale = float(spec.get("scale", 1.0))
        return (
            scale * float(spec.get("slab", self.slab_decay)),
            scale * float(spec.get("spike", self.spike_decay)),
        )

    def layer_decay_pair(self, model: nn.Module, name: str) -> tuple[float, float]:
        """(ε₁_l, ε₀_l) of layer ``name``: ``layer_decays`` by name, then ``output`` (the last
        prunable layer), then kind (``conv``/``linear``), else (slab_decay, spike_decay)."""
        layers = prunable_layers(model)
        kind = "conv" if isinstance(layers[name], MaskedConv2d) else "linear"
        keys = [name, "output"] if name == list(layers)[-1] else [name]
        for key in keys + [kind]:
            if key in self.layer_decays:
                return self._decays_from(self.layer_decays[key])
        return self.slab_decay, self.spike_decay

    def variances(self, n_train: int, decays: tuple[float, float] | None = None):
        """(σ₁², σ₀²) = (1/(N ε₁), 1/(N ε₀)) for the decays given (default: the method's)."""
        slab, spike = decays or (self.slab_decay, self.spike_decay)
        return 1 / (n_train * slab), 1 / (n_train * spike)

    @torch.no_grad()
    def e_step(self, model: nn.Module, n_train: int) -> dict[str, dict[str, torch.Tensor]]:
        """Per layer: inclusion probabilities p_g, mean squares and live sizes of its groups."""
        out = {}
        for name, layer in prunable_layers(model).items():
            slab_var, spike_var = self.variances(n_train, self.layer_decay_pair(model, name))
            w = layer.masked(layer.point_weight())
            live = torch.ones_like(w) if layer.weight_mask is None else layer.weight_mask
            sum_sq, size = group_sum(w * w), group_sum(live)
            pi = self.inclusion_prior.get(name, self.prior_inclusion)
            p = torch.sigmoid(inclusion_log_odds(sum_sq, size, pi, slab_var, spike_var))
            p = torch.where(size > 0, p, torch.zeros_like(p))
            out[name] = {"p": p, "sum_sq": sum_sq, "size": size}
        return out

    @torch.no_grad()
    def on_epoch_end(self, model: nn.Module, optimizer, epoch: int) -> dict:
        log = {}
        if epoch in snapshot_epochs(self.epochs, self.cycles) and epoch >= self.em_start:
            self.snapshots.append(
                {n: p.detach().clone() for n, p in model.named_parameters()} | {"epoch": epoch}
            )
        if epoch < self.em_start or optimizer is None:
            return log
        n_train = optimizer.param_groups[0]["n_train"]
        layers = prunable_layers(model)
        stats = self.e_step(model, n_train)
        removed_now = {}
        for name, layer in layers.items():
            p, sum_sq, size = stats[name]["p"], stats[name]["sum_sq"], stats[name]["size"]
            alive = size > 0
            g = int(alive.sum())
            self.inclusion_prior[name] = min(
                max(
                    (float(p[alive].sum()) + self.beta_a - 1)
                    / max(g + self.beta_a + self.beta_b - 2, 1e-12),
                    1e-6,
                ),
                1 - 1e-6,
            )
            w = layer.point_weight()
            slab_decay, spike_decay = self.layer_decay_pair(model, name)
            _, spike_var = self.variances(n_train, (slab_decay, spike_decay))
            decay = p * slab_decay + (1 - p) * spike_decay
            optimizer.state[w]["weight_decay"] = expand_groups(decay, w).clone()
            mean_sq = sum_sq / size.clamp(min=1)
            gone = alive & (p < 0.5) & (mean_sq < self.prune_threshold * spike_var)
            if gone.any():
                removed_now[name] = gone
        self._remove(model, removed_now)
        log["em_removed_groups"] = sum(int(v.sum()) for v in removed_now.values())
        log["em_slab_groups"] = sum(int((s["p"] >= 0.5).sum()) for s in stats.values())
        return log

    @staticmethod
    def _remove(model: nn.Module, gone: dict[str, torch.Tensor]) -> None:
        """Mask the removed groups (and, in an MLP, the incoming rows of hidden units whose
        outgoing column is gone) and zero their parameters."""
        layers = prunable_layers(model)
        names = list(layers)
        for name, groups in gone.items():
            layer = layers[name]
            w = layer.point_weight()
            mask = torch.ones_like(w) if layer.weight_mask is None else layer.weight_mask.clone()
            mask = mask * expand_groups((~groups).to(w.dtype), w)
            layer.set_weight_mask(mask)
            i = names.index(name)
            if isinstance(model, MLP) and i > 0:  # hidden unit j of the layer below is unread
                below = layers[names[i - 1]]
                wb = below.point_weight()
                mask_b = torch.ones_like(wb) if below.weight_mask is None else below.weight_mask
                below.set_weight_mask(mask_b * (~groups).to(wb.dtype)[:, None])
        for layer in layers.values():
            if layer.weight_mask is not None:
                layer.point_weight().mul_(layer.weight_mask)

    # ---- prediction, pruning, state ----------------------------------------------------------
    @torch.no_grad()
    def predict_log_probs(self, model: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
        if mode != "ensemble" or not self.snapshots:
            return super().predict_log_probs(model, x, "mean")
        was_training = model.training
        model.eval()
        try:
            names = {n for n, _ in model.named_parameters()}
            lps = []
            for snap in self.snapshots:
                params = {n: t.to(x.device) for n, t in snap.items() if n in names}
                lp = [
                    F.log_softmax(functional_call(model, params, (x[s : s + 10000],)), -1)
                    for s in range(0, len(x), 10000)
                ]
                lps.append(torch.cat(lp))
        finally:
            model.train(was_training)
        return torch.logsumexp(torch.stack(lps), 0) - math.log(len(lps))

    def native_masks(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The groups removed during training (all ones where nothing was removed)."""
        return {
            n: (
                torch.ones_like(m.point_weight())
                if m.weight_mask is None
                else m.weight_mask.clone()
            )
            for n, m in prunable_layers(model).items()
        }

    def state_dict(self) -> dict:
        return {
            "inclusion_prior": dict(self.inclusion_prior),
            "snapshots": [dict(s) for s in self.snapshots],
        }

    def load_state_dict(self, state: dict) -> None:
        self.inclusion_prior = dict(state.get("inclusion_prior", {}))
        self.snapshots = [dict(s) for s in state.get("snapshots", [])]

    def describe(self) -> dict:
        return {
            "method": self.name,
            "prior": f"spike-and-slab group, eps1={self.slab_decay:g}, eps0={self.spike_decay:g}"
            + "".join(
                f"; {key}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(spec.items()))
                for key, spec in sorted(self.layer_decays.items())
            ),
            "cycles": self.cycles,
            "slab_decay": self.slab_decay,
            "spike_decay": self.spike_decay,
            "em_start": self.em_start,
            "prune_threshold": self.prune_threshold,
            **({"layer_decays": self.layer_decays} if self.layer_decays else {}),
            "snapshots": len(self.snapshots),
        }
