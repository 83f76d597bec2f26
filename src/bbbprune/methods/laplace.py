"""Post-hoc Laplace approximation of a trained network (MacKay 1992; Ritter, Botev & Barber
2018; Daxberger et al. 2021, "Laplace Redux", with their library laplace-torch), then pruning
by |w|/σ. It trains nothing: the run starts from trained weights (``train.init_from``) and,
instead of training epochs, makes one pass over the training data.

Posterior. q(w) = N(w*, P⁻¹) around the trained weights w*, with the precision

    P = Σ_n J_nᵀ Λ_n J_n + λ I,

the generalised Gauss-Newton (GGN) approximation of the Hessian of the negative log-likelihood
summed over the N training examples (J_n the Jacobian of the logits with respect to the
weights, Λ_n = diag(p_n) − p_n p_nᵀ the Hessian of the cross-entropy in the logits; Daxberger
et al. Sec. 2) plus the prior precision λ of an isotropic Gaussian prior N(0, λ⁻¹ I). Settings:
  * ``hessian_structure``: ``diag`` (the diagonal of the GGN) or ``kron`` (K-FAC, Martens &
    Grosse 2015: per layer a Kronecker product of two small factors);
  * ``subset_of_weights``: ``all`` or ``last_layer`` (the other layers keep their point
    estimates; their σ is set to the prior's λ^−½, so |w|/σ is λ^½·|w| there, a magnitude score);
  * ``prior_precision`` λ, and with ``optimize_prior_precision`` λ chosen by maximising the
    Laplace approximation of the marginal likelihood (Daxberger et al. Sec. 4; MacKay 1992).
Each weight's σ is sqrt((P⁻¹)_ii): 1/sqrt(P_ii) for ``diag``, the diagonal of the inverse of
the Kronecker factorisation for ``kron``. Pruning: the signal-to-noise criterion |w|/σ
(``snr``, as for Bayes by Backprop), magnitude and random. Prediction: the mean network (the
trained weights), which pruning by |w|/σ leaves unchanged apart from the removed weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..errors import UserError, check_choice
from ..layers import prunable_layers
from ..layers.laplace import LaplaceConv2d, LaplaceLinear
from ..nets.factory import LayerFactory
from ..nets.plain import plain_copy
from ..nets.pooling import with_torch_pooling
from .base import Method

HESSIAN_STRUCTURES = ("diag", "kron")
SUBSETS = ("all", "last_layer")


def posterior_sigmas(la, net: nn.Module) -> dict[int, torch.Tensor]:
    """σ of every parameter of ``net`` (the network the fitted laplace-torch object ``la`` saw)
    that ``la`` covers, by ``id`` of the parameter: sqrt of the diagonal of the posterior
    covariance."""
    if "Kron" in type(la).__name__:
        variance = la.posterior_precision.diag(exponent=-1)
    else:
        variance = la.posterior_variance
    variance = variance.detach().flatten()
    last_layer = getattr(la.model, "_last_layer_name", None)  # last-layer Laplace (on a copy)
    if last_layer is not None:
        params = list(net.get_submodule(last_layer).parameters())
    else:
        params = [p for p in net.parameters() if p.requires_grad]
    out, start = {}, 0
    for p in params:
        out[id(p)] = variance[start : start + p.numel()].view_as(p).sqrt()
        start += p.numel()
    if start != variance.numel():
        raise RuntimeError(f"Laplace posterior has {variance.numel()} entries, parameters {start}")
    return out


def _as_sequential(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """``net`` as an nn.Sequential of its children (what BackPACK differentiates) when that
    computes the same outputs on ``x``; else ``net`` itself."""
    if isinstance(net, nn.Sequential):
        return net
    seq = nn.Sequential(*net.children())
    try:
        with torch.no_grad():
            same = torch.equal(seq(x), net(x))
    except (RuntimeError, TypeError):
        same = False
    return seq if same else net


class LaplacePosterior(Method):
    """Laplace approximation of a trained network (module docstring)."""

    criteria = ("snr", "magnitude", "random")
    prediction_modes = ("mean",)
    trains = False

    def __init__(
        self,
        name: str,
        hessian_structure: str = "diag",
        subset_of_weights: str = "all",
        prior_precision: float = 1.0,
        optimize_prior_precision: bool = True,
        batch_size: int | None = None,
        criteria=None,
        dropout: float = 0.0,
    ):
        super().__init__(name, dropout, criteria)
        self.hessian_structure = check_choice(
            "method.hessian_structure", hessian_structure, HESSIAN_STRUCTURES
        )
        self.subset_of_weights = check_choice(
            "method.subset_of_weights", subset_of_weights, SUBSETS
        )
        if not float(prior_precision) > 0:
            raise UserError(f"method.prior_precision must be > 0, got {prior_precision}")
        self.prior_precision = float(prior_precision)
        self.optimize_prior_precision = bool(optimize_prior_precision)
        self.batch_size = None if batch_size is None else int(batch_size)

    def layer_factory(self) -> LayerFactory:
        return LayerFactory(
            linear=lambda i, o, bias=True: LaplaceLinear(i, o, bias),
            conv=lambda i, o, k, stride=1, padding=0, **kw: LaplaceConv2d(
                i, o, k, stride, padding, **kw
            ),
        )

    def fit_posterior(self, model: nn.Module, data, batch_size: int) -> dict:
        """One pass over the training data: the GGN, then (optionally) λ, then every σ."""
        from laplace import Laplace

        from ..layers.likelihoods import CATEGORICAL

        if data.likelihood is not CATEGORICAL:
            raise UserError("method=laplace supports classification datasets only")
        loader = DataLoader(
            TensorDataset(data.x_train, data.y_train), batch_size=self.batch_size or batch_size
        )
        # laplace-torch on a copy built of plain nn.Linear / nn.Conv2d / nn.MaxPool2d (same
        # names, same function): BackPACK computes the exact diagonal GGN of those without
        # forming per-example Jacobians
        plain = with_torch_pooling(plain_copy(model))
        net, backend = plain, {}
        if self.hessian_structure == "diag":
            from laplace.curvature import BackPackGGN

            net = _as_sequential(plain, data.x_train[:8])
            if isinstance(net, nn.Sequential):
                backend = {"backend": BackPackGGN}
        la = Laplace(
            net,
            "classification",
            subset_of_weights=self.subset_of_weights,
            hessian_structure=self.hessian_structure,
            prior_precision=self.prior_precision,
            **backend,
        )
        la.fit(loader)
        if self.optimize_prior_precision:
            la.optimize_prior_precision(method="marglik")
        prior_precision = float(torch.as_tensor(la.prior_precision).flatten()[0])
        sigmas = posterior_sigmas(la, net)
        with torch.no_grad():
            for name, layer in prunable_layers(model).items():
                sigma = sigmas.get(id(plain.get_submodule(name).weight))
                if sigma is None:  # outside the subset: the prior's σ (module docstring)
                    sigma = torch.full_like(layer.weight, prior_precision**-0.5)
                layer.posterior_sigma.copy_(sigma)
        return {"prior_precision": prior_precision}

    def describe(self) -> dict:
        return {
            "method": self.name,
            "hessian_structure": self.hessian_structure,
            "subset_of_weights": self.subset_of_weights,
            "prior_precision": self.prior_precision,
            "optimize_prior_precision": self.optimize_prior_precision,
        }
