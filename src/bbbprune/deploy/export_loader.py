"""Load a model written by ``bbbprune export`` into plain PyTorch. Depends on torch only: copy this
file next to your code if bbbprune is not installed.

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
"""

from __future__ import annotations

import torch
from torch import nn

FORMAT = "bbbprune-export-1"


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


def build_layers(layers: list[dict]) -> nn.Sequential:
    """An nn.Sequential from the ``layers`` list of an export (see the module docstring)."""
    mods: list[nn.Module] = []
    for layer in layers:
        op = layer["op"]
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


def load_exported(path) -> nn.Sequential:
    """The network of a ``bbbprune export`` file, in evaluation mode; outputs are logits."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return build_layers(state["layers"])
