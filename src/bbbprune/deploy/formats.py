"""Portable export formats beside ``torch.save``: safetensors (no pickle, sparse layers as their
CSR arrays, the posterior's σ optionally kept) and ONNX (the shrunk dense network).

safetensors file (read by bbbprune.export_loader, which needs torch and safetensors only):

  * tensors, named by position and role: ``<i>.bias``, ``<i>.weight.values`` (dense: the
    (out, fan-in) matrix; CSR: the non-zero values), ``<i>.weight.crow_indices``,
    ``<i>.weight.col_indices``, ``<i>.index`` (select), and with ``posterior=True``
    ``<i>.sigma.values`` / ``<i>.bias_sigma``;
  * metadata (strings): ``format`` = "bbbprune-export", ``version`` = "1", ``meta`` (JSON: run,
    method, criterion, sparsity, preprocessing) and ``layers`` (JSON: the architecture, the
    layer list of the ``.pt`` format with every tensor replaced by ``{"tensor": name}``).

Posterior (``export.posterior=true``): each weight's posterior standard deviation σ beside its
mean — Bayes by Backprop σ = softplus(ρ) (Blundell et al. 2015, Sec. 3.2) for weights and
biases; Sparse VD σ = exp(½ log σ²) (Molchanov et al. 2017, additive parameterisation) — stored
in the same layout as the mean (for CSR: the values at the same positions; pruned weights have
no σ, they stay exactly zero), so ``load_exported(path, sample=True)`` draws w = μ + σ∘ε at every
forward pass and ``sampled_log_probs`` averages S passes: the sampled predictive. The network is
then kept at full size (no structured shrink): folding a removed unit's constant output into the
next layer's bias is exact for the mean network only, not for sampled weights.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..layers import prunable_layers
from ..storage import write_bytes
from .export_loader import SAFETENSORS_FORMAT, SAFETENSORS_VERSION, build_layers

FORMATS = ("pt", "safetensors", "onnx")


def _split_tensors(tree, prefix: str, tensors: dict[str, torch.Tensor]):
    """``tree`` with every tensor replaced by ``{"tensor": name}``, the tensors put in
    ``tensors`` under their dotted position."""
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous().clone()
        return {"tensor": prefix}
    if isinstance(tree, dict):
        return {k: _split_tensors(v, f"{prefix}.{k}", tensors) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]
    return tree


def safetensors_bytes(state: dict) -> bytes:
    """The safetensors file of an export ``state`` (export.export_state, posterior_state)."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    layers = [_split_tensors(layer, str(i), tensors) for i, layer in enumerate(state["layers"])]
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "version": SAFETENSORS_VERSION,
        "meta": json.dumps(state.get("meta", {})),
        "layers": json.dumps(layers),
    }
    return save(tensors, metadata=metadata)


def _posterior_sigmas(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(σ of the weight, σ of the bias or None) of a Bayes by Backprop or Sparse VD layer."""
    if hasattr(layer, "weight_rho"):  # Bayes by Backprop: σ = softplus(ρ)
        bias = None if layer.bias_rho is None else F.softplus(layer.bias_rho)
        return layer.weight_sigma(), bias
    if hasattr(layer, "log_sigma2") and not hasattr(layer, "group_log_alpha"):
        return torch.exp(0.5 * layer.log_sigma2), None  # Sparse VD, additive σ²
    raise UserError(
        f"export.posterior needs a Bayes by Backprop or (ungrouped) Sparse VD network; "
        f"{type(layer).__name__} has no per-weight σ"
    )


def _aligned(sigma: torch.Tensor, packed: dict) -> dict:
    """σ (out, ...) in the layout of the packed mean ``packed``: dense as a matrix, CSR as the
    values at the mean's non-zero positions."""
    s = sigma.detach().float().cpu().reshape(tuple(packed["shape"]))
    if packed["layout"] == "dense":
        return {"layout": "dense", "values": (s * (packed["values"] != 0)).contiguous()}
    rows = torch.repeat_interleave(
        torch.arange(len(packed["crow_indices"]) - 1), packed["crow_indices"].diff().long()
    )
    return {"layout": "csr", "values": s[rows, packed["col_indices"].long()].contiguous()}


@torch.no_grad()
def add_posterior(state: dict, model: nn.Module) -> dict:
    """``state``, the full-size export of ``model`` (export.export_state with structured=False,
    i.e. the masked means the ``mean`` predictive uses), with each weight's and bias's posterior
    σ beside it (keys ``sigma`` and ``bias_sigma``)."""
    computing = [d for d in state["layers"] if d["op"] in ("linear", "conv2d")]
    for desc, layer in zip(computing, prunable_layers(model).values(), strict=True):
        sigma, bias_sigma = _posterior_sigmas(layer)
        desc["sigma"] = _aligned(sigma, desc["weight"])
        if bias_sigma is not None:
            desc["bias_sigma"] = bias_sigma.detach().float().cpu().clone()
    state["meta"] = {**state.get("meta", {}), "posterior": True}
    return state


def to_dense_layout(state: dict) -> dict:
    """``state`` with every weight dense (what ONNX, which has no sparse tensors, can run)."""
    from .export_loader import dense_weight

    layers = []
    for layer in state["layers"]:
        layer = dict(layer)
        if "weight" in layer:
            w = dense_weight(layer["weight"])
            layer["weight"] = {"layout": "dense", "shape": list(w.shape), "values": w}
        layers.append(layer)
    return {**state, "layers": layers}


def onnx_bytes(state: dict, example: torch.Tensor) -> bytes:
    """The ONNX model (opset of torch's TorchScript exporter) of the dense network of
    ``state``; input ``input`` (batch, ...) and output ``logits``, the batch size dynamic."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError as exc:
        raise UserError("export.format=onnx needs onnx: pip install 'bbbprune[export]'") from exc
    net = build_layers(to_dense_layout(state)["layers"])
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated, not gone; it
            warnings.simplefilter("ignore")  # takes a second where torch.export takes half a minute
            torch.onnx.export(
                net,
                (example[:2],),
                tmp,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
        return Path(tmp).read_bytes()
    finally:
        Path(tmp).unlink(missing_ok=True)


def onnx_logits(data: bytes, x: torch.Tensor) -> torch.Tensor:
    """Run an ONNX model with onnxruntime (CPU) on ``x``."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise UserError(
            "checking an ONNX export needs onnxruntime: pip install 'bbbprune[export]'"
        ) from exc
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": x.detach().cpu().numpy()})[0]
    return torch.from_numpy(out)


def write_format(path: Path, state: dict, fmt: str, example: torch.Tensor) -> int:
    """Write ``state`` as ``fmt`` (pt, safetensors, onnx) atomically; returns the bytes."""
    if fmt == "pt":
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
    elif fmt == "safetensors":
        data = safetensors_bytes(state)
    else:
        data = onnx_bytes(state, example)
    write_bytes(Path(path), data)
    return len(data)
