"""Starting a run from a trained network's weights (``train.init_from``).

Molchanov et al. (2017) train Sparse VD on LeNet-5 from a pretrained network rather than from a
random initialisation (Molchanov, Ashukha & Vetrov 2017, arXiv:1701.05369). ``train.init_from``
names where the weights come from:

  * a method config name (``sgd``): the run of *this* experiment's configuration with that
    method (its own defaults, ``init_from`` unset), which must have finished, e.g. the
    "Original" network of the same table;
  * a run directory (anything containing a path separator);
  * a file: a bbbprune checkpoint (``checkpoint.pt`` of a run), or a state dict of this run's
    architecture as plain PyTorch layers (e.g. ``torch.save(net.state_dict(), path)`` of a
    torchvision network built as ``model=torchvision`` builds it), possibly under a
    ``"state_dict"`` or ``"model"`` key. Nothing is downloaded. A state dict that does not fit
    is refused with the first key that does not (missing, unexpected, or of another shape).
    Every parameter and buffer outside the prunable layers (batch norm) is copied too.

Every prunable layer's point weight (``point_weight()``: w for a deterministic layer, μ for Bayes
by Backprop, θ for Sparse VD, the slab mean for SS-VI) and its bias are copied, layer by layer in
order, from the source's mean weights (masked weights as zeros). The other parameters (σ, log σ²,
inclusion logits) keep their method's initialisation. The source's run-directory name, which
carries its hash, enters this run's identity.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..errors import UserError
from ..evaluation.records import METRICS
from ..layers import MaskedConv2d, MaskedLinear
from ..layers.masked import prunable_layers
from ..methods import build_method
from ..nets.factory import LayerFactory
from ..nets.models import build_model
from ..storage import load_checkpoint
from .checkpoints import load_run
from .identity import source_run_directory


def _point_bias(layer: nn.Module) -> torch.Tensor | None:
    """The bias of the evaluation-mode pass: ``bias``, or Bayes by Backprop's ``bias_mu``."""
    bias = getattr(layer, "bias", None)
    return getattr(layer, "bias_mu", None) if bias is None else bias


def initialise_from(model: nn.Module, cfg: DictConfig, spec: dict) -> None:
    """Copy the point weights named by ``cfg.train.init_from`` into ``model`` (module docstring)."""
    source = source_run_directory(cfg)
    if source.is_file():
        initialise_from_file(model, source, spec)
    else:
        initialise_from_run(model, source)


def plain_network(spec: dict) -> nn.Module:
    """``spec``'s architecture with plain layers (MaskedLinear / MaskedConv2d: the state-dict
    keys of nn.Linear / nn.Conv2d)."""
    return build_model(
        spec,
        LayerFactory(
            linear=lambda i, o, bias=True: MaskedLinear(i, o, bias),
            conv=lambda i, o, k, stride=1, padding=0, **kw: MaskedConv2d(
                i, o, k, stride, padding, **kw
            ),
        ),
    )


def _state_dict_of(obj, path: Path) -> dict:
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise UserError(f"train.init_from: {path} is not a state dict (name -> tensor)")
    return obj


def check_state_fits(state: dict, expected: dict, what: str) -> None:
    """One-line UserError naming the first key of ``state`` that does not fit ``expected``."""
    for key, value in expected.items():
        if key not in state:
            raise UserError(f"{what} does not fit this model: key {key!r} is missing")
        if tuple(state[key].shape) != tuple(value.shape):
            raise UserError(
                f"{what} does not fit this model: key {key!r} has shape "
                f"{tuple(state[key].shape)}, this model {tuple(value.shape)}"
            )
    for key in state:
        if key not in expected:
            raise UserError(f"{what} does not fit this model: unexpected key {key!r}")


def initialise_from_file(model: nn.Module, path: Path, spec: dict) -> None:
    """From a bbbprune checkpoint or a state-dict file (module docstring)."""
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and obj.get("format") == "bbbprune-checkpoint-1":
        method = build_method(OmegaConf.create(obj["config"]["method"]))
        source = build_model(obj["model_spec"], method.layer_factory())
        source.load_state_dict(obj["model"])
        copy_point_weights(model, source, path.name)
        return
    state = _state_dict_of(obj, path)
    plain = plain_network(spec)
    check_state_fits(state, plain.state_dict(), f"train.init_from: {path.name}")
    plain.load_state_dict(state)
    copy_point_weights(model, plain, path.name)


def copy_point_weights(model: nn.Module, source: nn.Module, what: str) -> None:
    """Point weights (masked weights as zeros) and biases of ``source``'s prunable layers into
    ``model``'s, layer by layer in order; then every parameter and buffer outside the prunable
    layers (batch norm) that both have under the same name and shape."""
    _copy_layers(model, source, what)
    prunable = set(prunable_layers(model))
    own = model.state_dict()
    with torch.no_grad():
        for key, value in source.state_dict().items():
            if key.rpartition(".")[0] in prunable or key not in own:
                continue
            if own[key].shape == value.shape:
                own[key].copy_(value)


def _copy_layers(model: nn.Module, source: nn.Module, what: str) -> None:
    src_layers = list(prunable_layers(source).items())
    dst_layers = list(prunable_layers(model).items())
    if len(src_layers) != len(dst_layers):
        raise UserError(
            f"train.init_from: {what} has {len(src_layers)} prunable layers, "
            f"this model {len(dst_layers)}"
        )
    with torch.no_grad():
        for (src_name, src), (dst_name, dst) in zip(src_layers, dst_layers, strict=True):
            w = src.masked(src.point_weight())
            if w.shape != dst.point_weight().shape:
                raise UserError(
                    f"train.init_from: layer {src_name} has weight shape {tuple(w.shape)}, "
                    f"this model's {dst_name} {tuple(dst.point_weight().shape)}"
                )
            dst.point_weight().copy_(w)
            src_bias, dst_bias = _point_bias(src), _point_bias(dst)
            if src_bias is not None and dst_bias is not None:
                dst_bias.copy_(src_bias)


def initialise_from_run(model: nn.Module, source_dir: Path) -> None:
    """Copy the source run's point weights and biases into ``model``'s prunable layers."""
    source_dir = Path(source_dir)
    if not (source_dir / METRICS).exists():
        raise UserError(
            f"train.init_from: {source_dir} has not finished training; train it first "
            "(same command with method=<its method>)"
        )
    _, _, source, _ = load_run(source_dir, torch.device("cpu"))
    copy_point_weights(model, source, source_dir.name)
