"""Load a model written by ``bbbprune export`` into plain PyTorch. Depends on torch (and, for
``.safetensors`` files, the safetensors package) only: copy this file next to your code if
bbbprune is not installed.

    import torch
    from .export_loader import load_exported  # or: from export_loader import ...
    net = load_exported("model.pt")                     # an nn.Sequential in eval mode
    probs = net(images).softmax(-1)                     # images: (n, 1, 28, 28), preprocessed
                                                        # as in training (pixels / pixel_scale)

The file (``torch.save`` of a dict, readable with ``torch.load(..., weights_only=True)``) holds
``format`` ("bbbprune-export-1"), ``meta`` (run, method, criterion, sparsity, preprocessing) and
``layers``: a list of dicts with an ``op`` key, run in order:

  * ``flatten``; ``relu``; ``maxpool2d`` (kernel_size, stride);
  * ``select`` (index): keep these input features (inputs the pruned network no longer reads
    are gone);
  * ``linear`` / ``conv2d`` (stride, padding): ``bias`` and ``weight``, where ``weight`` is
    ``{"layout": "dense", "values": tensor}`` or ``{"layout": "csr", "shape", "crow_indices",
    "col_indices", "values"}``: compressed sparse rows of the weight flattened to (out, fan-in),
    with the smallest integer type that holds the column indices (int16 below 32,768 columns).

Sparse linear layers compute ``x Wᵀ + b`` with a torch sparse CSR matrix; sparse conv weights
are stored sparse on disk and made dense when loaded (PyTorch has no sparse convolution on CPU).

A ``.safetensors`` export (``export.format=safetensors``, written by bbbprune.deploy.formats)
holds the same layer list as JSON in its metadata (``layers``, each tensor named
``{"tensor": name}``), with ``format`` "bbbprune-export" and ``version`` "1"; it is read without
pickle. With ``export.posterior=true`` a layer also carries ``sigma`` (laid out as its weight)
and ``bias_sigma``: ``load_exported(path, sample=True)`` then draws w = μ + σ∘ε at every forward
pass, and ``sampled_log_probs(net, x, samples)`` is the sampled predictive. A file of another
version, a truncated file or metadata that does not match the tensors raises ExportFileError
(one line) before any module is built.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
from torch import nn

try:  # inside bbbprune a bad file is a UserError (one line on the command line)
    from bbbprune.errors import UserError as _Error
except ImportError:  # a copy of this file next to your code
    _Error = Exception

FORMAT = "bbbprune-export-1"
SAFETENSORS_FORMAT = "bbbprune-export"
SAFETENSORS_VERSION = "1"


class ExportFileError(_Error, ValueError):
    """A file that is not a readable export of this format version."""


def csr_tensor(packed: dict) -> torch.Tensor:
    """The torch sparse CSR matrix (float32, int32 indices) of a packed ``csr`` weight."""
    return torch.sparse_csr_tensor(
        packed["crow_indices"].to(torch.int32),
        packed["col_indices"].to(torch.int32),
        packed["values"],
        size=tuple(packed["shape"]),
        check_invariants=True,
    )


def dense_weight(packed: dict) -> torch.Tensor:
    """The dense (out, fan-in) matrix of a packed weight, whatever its layout."""
    if packed["layout"] == "dense":
        return packed["values"].reshape(tuple(packed["shape"]))
    return csr_tensor(packed).to_dense()


class SparseLinear(nn.Module):
    """y = x Wᵀ + b with W a sparse CSR matrix, computed as (b + W xᵀ)ᵀ (torch.sparse.addmm)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight = weight  # sparse CSR tensors are kept as plain attributes, not buffers
        self.register_buffer("bias", bias.unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sparse.addmm(self.bias, self.weight, x.t()).t()

    def extra_repr(self) -> str:
        out, fan_in = self.weight.shape
        return f"{fan_in} -> {out}, {self.weight.values().numel()} non-zero weights (CSR)"


class SampledLinear(nn.Module):
    """y = x Wᵀ + b with W = μ + σ∘ε and b = μ_b + σ_b∘ε' drawn afresh at every call (ε
    standard normal); W dense or CSR (σ then holds the values at the same positions)."""

    def __init__(self, packed: dict, sigma: dict, bias, bias_sigma):
        super().__init__()
        self.packed, self.sigma_values = packed, sigma["values"]
        self.register_buffer("bias", bias)
        self.register_buffer("bias_sigma", bias_sigma if bias_sigma is not None else None)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.packed["values"]
        values = values + self.sigma_values * torch.randn_like(values)
        bias = self.bias
        if self.bias_sigma is not None:
            bias = bias + self.bias_sigma * torch.randn_like(bias)
        return dense_weight({**self.packed, "values": values}), bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.draw()
        return nn.functional.linear(x, w, b)


class SampledConv2d(SampledLinear):
    """A convolution whose kernel and bias are drawn as in SampledLinear at every call."""

    def __init__(self, layer: dict):
        super().__init__(layer["weight"], layer["sigma"], layer["bias"], layer.get("bias_sigma"))
        self.kernel_shape = tuple(layer["kernel_shape"])
        self.stride, self.padding = tuple(layer["stride"]), tuple(layer["padding"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.draw()
        return nn.functional.conv2d(x, w.reshape(self.kernel_shape), b, self.stride, self.padding)


@torch.no_grad()
def sampled_log_probs(net: nn.Module, x: torch.Tensor, samples: int = 10) -> torch.Tensor:
    """log (1/S) Σ_s softmax(f(x; w_s)) over ``samples`` forward passes of a network loaded with
    ``sample=True``: the sampled (Monte Carlo) predictive."""
    lps = torch.stack([torch.log_softmax(net(x), -1) for _ in range(samples)])
    return torch.logsumexp(lps, 0) - math.log(samples)


class SelectFeatures(nn.Module):
    """Keep the given columns of a (batch, features) input."""

    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index.to(torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)


def _linear(layer: dict) -> nn.Module:
    w, b = layer["weight"], layer["bias"]
    if w["layout"] == "csr":
        return SparseLinear(csr_tensor(w), b)
    out, fan_in = w["shape"]
    lin = nn.Linear(fan_in, out, device="meta")
    lin.weight = nn.Parameter(dense_weight(w), requires_grad=False)
    lin.bias = nn.Parameter(b, requires_grad=False)
    return lin


def _conv(layer: dict) -> nn.Module:
    w = dense_weight(layer["weight"]).reshape(tuple(layer["kernel_shape"]))
    conv = nn.Conv2d(
        w.shape[1],
        w.shape[0],
        tuple(w.shape[2:]),
        stride=tuple(layer["stride"]),
        padding=tuple(layer["padding"]),
        device="meta",
    )
    conv.weight = nn.Parameter(w, requires_grad=False)
    conv.bias = nn.Parameter(layer["bias"], requires_grad=False)
    return conv


def build_layers(layers: list[dict], sample: bool = False) -> nn.Sequential:
    """An nn.Sequential from the ``layers`` list of an export (see the module docstring);
    ``sample``: layers with a ``sigma`` draw their weights at every call."""
    if sample and not any("sigma" in layer for layer in layers):
        raise ExportFileError("sample=True needs an export written with export.posterior=true")
    mods: list[nn.Module] = []
    for layer in layers:
        op = layer["op"]
        if sample and "sigma" in layer:
            if op == "linear":
                mods.append(
                    SampledLinear(
                        layer["weight"], layer["sigma"], layer["bias"], layer.get("bias_sigma")
                    )
                )
            else:
                mods.append(SampledConv2d(layer))
            continue
        if op == "flatten":
            mods.append(nn.Flatten())
        elif op == "relu":
            mods.append(nn.ReLU())
        elif op == "maxpool2d":
            mods.append(nn.MaxPool2d(layer["kernel_size"], layer["stride"]))
        elif op == "select":
            mods.append(SelectFeatures(layer["index"]))
        elif op == "linear":
            mods.append(_linear(layer))
        elif op == "conv2d":
            mods.append(_conv(layer))
        else:
            raise ValueError(f"unknown layer op {op!r} in a {FORMAT} file")
    return nn.Sequential(*mods).eval()


def _safetensors_header(data: bytes, path) -> dict:
    """The JSON header of a safetensors file: 8 bytes little-endian length, then the JSON."""
    if len(data) < 8:
        raise ExportFileError(f"{path} is truncated ({len(data)} bytes): not a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ExportFileError(f"{path} is truncated: its header needs {n} bytes, it has fewer")
    try:
        return json.loads(data[8 : 8 + n])
    except ValueError as exc:
        raise ExportFileError(f"{path} is not a safetensors file (header: {exc})") from exc


def _join_tensors(tree, tensors: dict, used: set):
    if isinstance(tree, dict) and set(tree) == {"tensor"}:
        name = tree["tensor"]
        if name not in tensors:
            raise ExportFileError(f"its metadata names tensor {name!r}, which the file lacks")
        used.add(name)
        return tensors[name]
    if isinstance(tree, dict):
        return {k: _join_tensors(v, tensors, used) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join_tensors(v, tensors, used) for v in tree]
    return tree


def _check_layer(i: int, layer: dict) -> None:
    """Shapes of a layer's tensors agree with each other and with its declared shape."""
    if "weight" not in layer:
        return
    w, bias = layer["weight"], layer["bias"]
    out, fan_in = (int(d) for d in w["shape"])
    if w["layout"] == "dense":
        if tuple(w["values"].shape) != (out, fan_in):
            raise ExportFileError(
                f"layer {i}: weight of shape {tuple(w['values'].shape)}, metadata says "
                f"{(out, fan_in)}"
            )
    else:
        crow, col, values = w["crow_indices"], w["col_indices"], w["values"]
        if len(crow) != out + 1 or len(col) != len(values) or int(crow[-1]) != len(values):
            raise ExportFileError(
                f"layer {i}: CSR arrays (rows+1={len(crow)}, {len(col)} columns, {len(values)} "
                f"values) do not fit the declared shape {(out, fan_in)}"
            )
    if tuple(bias.shape) != (out,):
        raise ExportFileError(f"layer {i}: bias of shape {tuple(bias.shape)}, expected ({out},)")
    if "kernel_shape" in layer and math.prod(layer["kernel_shape"]) != out * fan_in:
        raise ExportFileError(f"layer {i}: kernel shape {layer['kernel_shape']} != {out}x{fan_in}")
    if "sigma" in layer and layer["sigma"]["values"].shape != w["values"].shape:
        raise ExportFileError(f"layer {i}: sigma is not laid out as its weight")


def read_safetensors(path) -> dict:
    """The export ``state`` (format, meta, layers) of a ``.safetensors`` export, checked whole
    before anything is built; no pickle involved."""
    from safetensors.torch import load

    data = Path(path).read_bytes()
    meta = _safetensors_header(data, path).get("__metadata__") or {}
    if meta.get("format") != SAFETENSORS_FORMAT:
        raise ExportFileError(f"{path} is not a bbbprune export (no format={SAFETENSORS_FORMAT!r})")
    if meta.get("version") != SAFETENSORS_VERSION:
        raise ExportFileError(
            f"{path} is a bbbprune export of format version {meta.get('version')}; this loader "
            f"reads version {SAFETENSORS_VERSION}"
        )
    try:
        tensors = load(data)
    except Exception as exc:  # safetensors' own check: offsets beyond the end of the file, ...
        raise ExportFileError(f"{path} is damaged or truncated ({exc})") from exc
    try:
        used: set[str] = set()
        layers = _join_tensors(json.loads(meta["layers"]), tensors, used)
        info = json.loads(meta.get("meta", "{}"))
        if used != set(tensors):
            extra = sorted(set(tensors) - used)
            raise ExportFileError(f"its tensors {extra[:3]} are not named in the metadata")
        for i, layer in enumerate(layers):
            _check_layer(i, layer)
    except ExportFileError as exc:
        raise ExportFileError(f"{path}: metadata and tensors disagree: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportFileError(f"{path}: metadata and tensors disagree ({exc!r})") from exc
    return {"format": FORMAT, "meta": info, "layers": layers}


def read_export(path) -> dict:
    """The export ``state`` of a ``.pt`` (torch.load, weights only) or ``.safetensors`` file."""
    if Path(path).suffix == ".safetensors":
        return read_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportFileError(f"{path} is damaged or not a torch file ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ExportFileError(f"{path} is not a {FORMAT} file")
    return state


def load_exported(path, sample: bool = False) -> nn.Sequential:
    """The network of a ``bbbprune export`` file (``.pt`` or ``.safetensors``), in evaluation
    mode; outputs are logits. ``sample=True`` (a posterior export): every call draws weights."""
    state = read_export(path)
    try:
        return build_layers(state["layers"], sample)
    except ExportFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # e.g. CSR invariants
        raise ExportFileError(f"{path}: its layers cannot be built ({exc})") from exc
