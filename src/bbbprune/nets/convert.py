"""Turn any PyTorch network into a Bayesian one: ``convert`` replaces every ``nn.Linear`` and
``nn.Conv2d`` by a Bayes-by-Backprop layer (Blundell et al. 2015) or a Sparse VD layer
(Molchanov, Ashukha & Vetrov 2017) and leaves every other module (batch norm, pooling,
attention, custom modules) as it is.

Initialisation (``init``):
  * ``"pretrained"``: the posterior means are the trained weights and biases (μ = w for BBB,
    θ = w for Sparse VD), so the converted network in evaluation mode (mean weights) computes
    what the original computes. BBB's initial σ follows MOPED (Krishnan, Subedar & Tickoo 2020,
    "Specifying weight priors in Bayesian deep neural networks with empirical Bayes", Sec. 3):
    σ = δ·|w| with δ = ``delta`` (0.1 unless given), or a constant ``sigma_init``; ρ is set so
    that softplus(ρ) = σ. Note that MOPED makes |μ|/σ = 1/δ for every weight at the start, so
    SNR pruning ranks weights only after some fine-tuning. Sparse VD starts from θ = w with
    log σ² = ``log_sigma2_init`` (−10, the authors' value), or σ = ``sigma_init``, or
    σ = δ·|w| (an initial log α = 2 log δ for every weight).
  * ``"random"``: the layers' own initialisation (μ, θ ~ U(±1/sqrt(fan_in)); σ = softplus(−5)
    for BBB unless ``sigma_init`` is given).

``include`` / ``exclude`` take module-name patterns (fnmatch, e.g. ``"layer4.*"``, ``"fc"``) or
layer type names (``"Conv2d"``); a module is selected when its own name, the name of a module
containing it, or its type name matches. Only modules whose type is exactly nn.Linear or
nn.Conv2d with zero padding are converted (subclasses such as the output projection of
nn.MultiheadAttention, whose weight is read directly rather than through its forward, are left
alone); naming any other layer explicitly is an error that names it.
"""

from __future__ import annotations

import copy
import fnmatch
import math

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from ..errors import UserError, check_choice
from ..layers import BayesConv2d, BayesLinear, Conv2dSVD, LinearSVD

METHODS = ("bbb", "svd")
INITS = ("pretrained", "random")
MOPED_DELTA = 0.1
SIGMA_MIN = 1e-8  # MOPED at a zero weight: σ = 0 has no finite ρ


def _is_convertible(m: nn.Module) -> bool:
    """Exactly nn.Linear / nn.Conv2d (zero padding), or their lazy forms (refused later, with
    a message, while uninitialised)."""
    if type(m) in (nn.Linear, nn.LazyLinear):
        return True
    return type(m) in (nn.Conv2d, nn.LazyConv2d) and m.padding_mode == "zeros"


def _why_not(m: nn.Module) -> str:
    if type(m) is nn.Conv2d:
        return f"padding_mode={m.padding_mode!r} (only zero padding is converted)"
    return "convert replaces nn.Linear and nn.Conv2d only"


def _matches(name: str, module: nn.Module, patterns) -> bool:
    parts = name.split(".")
    prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        type(module).__name__ == p or any(fnmatch.fnmatchcase(q, p) for q in prefixes)
        for p in patterns
    )


def _as_list(patterns) -> list[str] | None:
    if patterns is None:
        return None
    return [patterns] if isinstance(patterns, str) else [str(p) for p in patterns]


def select_layers(model: nn.Module, include=None, exclude=None) -> dict[str, nn.Module]:
    """The nn.Linear / nn.Conv2d modules ``convert`` replaces, by name, in module order.
    Raises a UserError for an ``include`` pattern that matches nothing or only modules that
    cannot be converted, and for a model with nothing to convert."""
    include, exclude = _as_list(include), _as_list(exclude) or []
    named = [(n, m) for n, m in model.named_modules() if n]
    for p in include or []:
        hits = [(n, m) for n, m in named if _matches(n, m, [p])]
        if not hits:
            examples = ", ".join(n for n, _ in named[:4])
            raise UserError(
                f"include pattern {p!r} matches no module (module names look like: {examples})"
            )
        if not any(_is_convertible(m) for _, m in hits):
            n, m = next(
                ((n, m) for n, m in hits if next(m.parameters(recurse=False), None) is not None),
                hits[0],
            )
            raise UserError(
                f"include pattern {p!r} names {n} ({type(m).__name__}), which cannot be "
                f"converted: {_why_not(m)}"
            )
    layers = {
        n: m
        for n, m in named
        if _is_convertible(m)
        and (include is None or _matches(n, m, include))
        and not _matches(n, m, exclude)
    }
    if not layers:
        raise UserError(
            f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to convert"
            + (" (after include/exclude)" if include or exclude else "")
        )
    for n, m in layers.items():
        if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params():
            raise UserError(
                f"{n} ({type(m).__name__}) has uninitialised (lazy) parameters: run one forward "
                "pass through the model before converting it"
            )
    return layers


def layer_arguments(m: nn.Module) -> dict:
    """Constructor arguments of an nn.Linear / nn.Conv2d: sizes, geometry, bias."""
    if isinstance(m, nn.Linear):
        return {"in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    return {
        "in": m.in_channels,
        "out": m.out_channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "groups": m.groups,
        "bias": m.bias is not None,
    }


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _point_bias(layer: nn.Module):
    return layer.bias_mu if hasattr(layer, "bias_mu") else layer.bias


@torch.no_grad()
def copy_point_weights(new: nn.Module, old: nn.Module) -> None:
    """Posterior mean (point weight) and bias of ``new`` := weight and bias of ``old``."""
    new.point_weight().copy_(old.weight)
    if old.bias is not None and _point_bias(new) is not None:
        _point_bias(new).copy_(old.bias)


def _inverse_softplus(sigma: torch.Tensor) -> torch.Tensor:
    """ρ with softplus(ρ) = σ: ρ = log(e^σ − 1)."""
    return torch.log(torch.expm1(sigma.clamp_min(SIGMA_MIN)))


def _bayes_layer(m: nn.Module, method: str, prior, rho_init: float, log_sigma2_init: float):
    a = layer_arguments(m)
    if method == "bbb":
        if isinstance(m, nn.Linear):
            return BayesLinear(a["in"], a["out"], prior, bias=a["bias"], rho_init=rho_init)
        return BayesConv2d(
            a["in"],
            a["out"],
            a["kernel_size"],
            prior,
            stride=a["stride"],
            padding=a["padding"],
            bias=a["bias"],
            rho_init=rho_init,
            dilation=a["dilation"],
            groups=a["groups"],
        )
    if isinstance(m, nn.Linear):
        return LinearSVD(a["in"], a["out"], bias=a["bias"], log_sigma2_init=log_sigma2_init)
    return Conv2dSVD(
        a["in"],
        a["out"],
        a["kernel_size"],
        stride=a["stride"],
        padding=a["padding"],
        bias=a["bias"],
        log_sigma2_init=log_sigma2_init,
        dilation=a["dilation"],
        groups=a["groups"],
    )


@torch.no_grad()
def set_sigma(layer: nn.Module, method: str, sigma_of) -> None:
    """σ of every weight (and BBB bias) := sigma_of(point value)."""
    if method == "bbb":
        layer.weight_rho.copy_(_inverse_softplus(sigma_of(layer.weight_mu)))
        if layer.bias_mu is not None:
            layer.bias_rho.copy_(_inverse_softplus(sigma_of(layer.bias_mu)))
    else:  # Sparse VD: log σ²
        layer.log_sigma2.copy_(2 * torch.log(sigma_of(layer.theta).clamp_min(SIGMA_MIN)))


def convert(
    model: nn.Module,
    method: str = "bbb",
    init: str = "pretrained",
    include=None,
    exclude=None,
    delta: float | None = None,
    sigma_init: float | None = None,
    prior=None,
    log_sigma2_init: float = -10.0,
    inplace: bool = False,
) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace``) whose nn.Linear / nn.Conv2d
    layers are Bayes-by-Backprop (``method="bbb"``) or Sparse VD (``"svd"``) layers (module
    docstring). ``prior`` (BBB): a bbbprune.layers.priors object or its config dict; default the
    scale mixture ½N(0, 1) + ½N(0, e^−12) of Blundell et al. (π = ½, σ₁ = 1, σ₂ = e^−6)."""
    from ..layers.priors import ScaleMixturePrior, build_prior

    check_choice("convert method", method, METHODS)
    check_choice("convert init", init, INITS)
    if delta is not None and sigma_init is not None:
        raise UserError("give delta (MOPED, σ = δ·|w|) or sigma_init (constant σ), not both")
    if delta is not None and not float(delta) > 0:
        raise UserError(f"delta must be > 0, got {delta}")
    if sigma_init is not None and not float(sigma_init) > 0:
        raise UserError(f"sigma_init must be > 0, got {sigma_init}")
    if prior is None:
        prior = ScaleMixturePrior(0.5, 1.0, math.exp(-6))
    elif isinstance(prior, dict):
        prior = build_prior(prior)
    layers = select_layers(model, include, exclude)
    if not inplace:
        model = copy.deepcopy(model)
        layers = {n: model.get_submodule(n) for n in layers}
    rho_init = -5.0
    for name, old in layers.items():
        new = _bayes_layer(old, method, prior, rho_init, log_sigma2_init)
        new.to(device=old.weight.device, dtype=old.weight.dtype).train(old.training)
        if init == "pretrained":
            copy_point_weights(new, old)
        if sigma_init is not None:
            set_sigma(new, method, lambda w: torch.full_like(w, float(sigma_init)))
        elif init == "pretrained" and (method == "bbb" or delta is not None):
            d = float(MOPED_DELTA if delta is None else delta)
            set_sigma(new, method, lambda w, d=d: d * w.abs())
        elif delta is not None:
            raise UserError("delta (MOPED) scales trained weights: use it with init='pretrained'")
        replace_module(model, name, new)
    return model


def convert_with_factory(model: nn.Module, factory, include=None, exclude=None) -> nn.Module:
    """Replace (in place) every nn.Linear / nn.Conv2d of ``model`` by the layer a method's
    LayerFactory builds (bbbprune.nets.factory.LayerFactory), with the original weights and biases as
    point weights: the route by which the command line puts any method's layers into a
    torchvision network. Only non-default geometry is passed to the factory, so factories that
    build plain convolutions keep working on networks that have only those."""
    for name, old in select_layers(model, include, exclude).items():
        a = layer_arguments(old)
        try:
            if isinstance(old, nn.Linear):
                kw = {} if a["bias"] else {"bias": False}
                new = factory.linear(a["in"], a["out"], **kw)
            else:
                kw = {
                    k: a[k]
                    for k, default in (("dilation", (1, 1)), ("groups", 1), ("bias", True))
                    if a[k] != default
                }
                new = factory.conv(
                    a["in"],
                    a["out"],
                    a["kernel_size"],
                    stride=a["stride"],
                    padding=a["padding"],
                    **kw,
                )
        except TypeError as exc:
            raise UserError(
                f"this method's layers cannot replace {name} ({type(old).__name__} with "
                f"{', '.join(f'{k}={v}' for k, v in kw.items())}): {exc}"
            ) from exc
        new.to(device=old.weight.device, dtype=old.weight.dtype).train(old.training)
        copy_point_weights(new, old)
        replace_module(model, name, new)
    return model
