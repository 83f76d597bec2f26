"""Deployable deterministic models from pruned runs: ``bbbprune export``.

The exported network is the one the ``mean`` prediction mode evaluates: every prunable layer's
evaluation-mode weight times its mask (w for SGD/dropout with dropout off, the posterior mean μ
for Bayes by Backprop, θ for Sparse VD, θ·μ_z with input groups) and its (mean) bias. For
Bayesian methods this is the posterior-mean network; the S-sample predictive is not exported.

Two steps, both exact up to float rounding:

1. Structured: ``bbbprune.deploy.structured.shrink`` removes the inputs, neurons and filters the masks
   have cut off (constants folded into the biases), so whole-unit sparsity becomes a physically
   smaller dense network.
2. Unstructured: the weights left are stored per layer either dense or as compressed sparse rows
   (values float32, column indices in the smallest integer type that fits, row pointers int32),
   whichever is smaller on disk (``layout=auto``), or always one of them (``sparse`` / ``dense``).

The file is a ``torch.save`` dict of tensors, lists and strings (format in
bbbprune.deploy.export_loader, which loads it with torch alone).
"""

from __future__ import annotations

import io
import math
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from ..data.tensors import load_tensors
from ..errors import UserError, check_choice
from ..layers import prunable_layers
from ..pruning.criteria import prune_model
from ..pruning.masking import apply_masks, sparsity
from ..storage import write_bytes
from .export_loader import FORMAT, SelectFeatures, build_layers, load_exported
from .primitives import SelectFeatures as ShrunkSelect
from .primitives import effective_bias, effective_weight
from .structured import kept_widths, shrink

LAYOUTS = ("auto", "sparse", "dense")
FLOAT_BYTES = 4
ROW_POINTER_BYTES = 4


def index_dtype(n_columns: int) -> torch.dtype:
    """The smallest signed integer type that holds column indices 0 .. n_columns − 1."""
    return torch.int16 if n_columns <= torch.iinfo(torch.int16).max + 1 else torch.int32


def csr_bytes(weight: torch.Tensor) -> int:
    """Bytes of the CSR arrays of a 2-D weight: nnz values, nnz column indices, rows + 1 pointers."""
    nnz = int(torch.count_nonzero(weight))
    idx = torch.empty((), dtype=index_dtype(weight.shape[1])).element_size()
    return nnz * (FLOAT_BYTES + idx) + (weight.shape[0] + 1) * ROW_POINTER_BYTES


def pack_weight(weight: torch.Tensor, layout: str) -> dict:
    """A weight (out, ...) as a ``dense`` or ``csr`` dict of its (out, fan-in) matrix; ``auto``
    picks the one with fewer bytes."""
    check_choice("export.layout", layout, LAYOUTS)
    fan_in = math.prod(weight.shape[1:])  # explicit: a layer shrunk to nothing has 0 × 0
    w = weight.detach().float().cpu().reshape(weight.shape[0], fan_in).contiguous()
    if layout == "auto":
        layout = "sparse" if csr_bytes(w) < w.numel() * FLOAT_BYTES else "dense"
    if layout == "dense":
        return {"layout": "dense", "shape": list(w.shape), "values": w.clone()}
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        csr = w.to_sparse_csr()
    return {
        "layout": "csr",
        "shape": list(w.shape),
        "crow_indices": csr.crow_indices().to(torch.int32),
        "col_indices": csr.col_indices().to(index_dtype(w.shape[1])),
        "values": csr.values().clone(),
    }


def _describe(module: nn.Module, layout: str) -> dict:
    """One entry of the ``layers`` list for a plain module (see bbbprune.deploy.export_loader)."""
    if isinstance(module, nn.Flatten):
        return {"op": "flatten"}
    if isinstance(module, nn.ReLU):
        return {"op": "relu"}
    if isinstance(module, nn.MaxPool2d):
        return {"op": "maxpool2d", "kernel_size": module.kernel_size, "stride": module.stride}
    if isinstance(module, ShrunkSelect | SelectFeatures):
        return {"op": "select", "index": module.index.detach().cpu().to(torch.int32)}
    if isinstance(module, nn.Linear):
        return {
            "op": "linear",
            "weight": pack_weight(module.weight, layout),
            "bias": module.bias.detach().float().cpu().clone(),
        }
    if isinstance(module, nn.Conv2d):
        return {
            "op": "conv2d",
            "kernel_shape": list(module.weight.shape),
            "stride": list(module.stride),
            "padding": list(module.padding),
            "weight": pack_weight(module.weight, layout),
            "bias": module.bias.detach().float().cpu().clone(),
        }
    raise TypeError(f"cannot export module {type(module).__name__}")


@torch.no_grad()
def plain_network(model: nn.Module) -> nn.Sequential:
    """The evaluation-mode network of ``model`` as plain nn.Linear / nn.Conv2d layers at full
    size (masked weights are zeros, dropout is dropped): the dense float32 reference."""
    mods: list[nn.Module] = []
    prunable = set(prunable_layers(model).values())

    def walk(module: nn.Module) -> None:
        for child in module.children():
            if child in prunable:
                w, b = effective_weight(child).float(), effective_bias(child).float()
                if w.dim() == 2:
                    plain = nn.Linear(w.shape[1], w.shape[0])
                else:
                    plain = nn.Conv2d(
                        w.shape[1], w.shape[0], w.shape[2:], child.stride, child.padding
                    )
                plain.weight.copy_(w)
                plain.bias.copy_(b)
                mods.append(plain)
            elif isinstance(child, nn.Dropout):
                continue
            elif len(list(child.children())) == 0:
                mods.append(child)
            else:
                walk(child)

    walk(model)
    return nn.Sequential(*mods).eval()


def export_state(model: nn.Module, layout: str = "auto", structured: bool = True, meta=None):
    """The dict ``bbbprune export`` saves: the (shrunk, if ``structured``) evaluation-mode
    network of ``model`` with its weights packed in ``layout``."""
    check_choice("export.layout", layout, LAYOUTS)
    net = shrink(model) if structured else plain_network(model)
    return {
        "format": FORMAT,
        "meta": dict(meta or {}),
        "layers": [_describe(m, layout) for m in net],
    }


def serialized(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save_export(path: Path, state: dict) -> int:
    """Write ``state`` atomically; returns the file's size in bytes."""
    data = serialized(state)
    write_bytes(Path(path), data)
    return len(data)


def dense_reference_state(model: nn.Module) -> dict:
    """The unpruned-format baseline: every weight dense float32 at full size (masks and structure
    ignored), i.e. what saving the dense network costs."""
    saved = {n: m.weight_mask for n, m in prunable_layers(model).items()}
    for m in prunable_layers(model).values():
        m.weight_mask = None
    try:
        return export_state(model, "dense", structured=False)
    finally:
        for n, m in prunable_layers(model).items():
            m.weight_mask = saved[n]


def latency_clock():
    """The clock latencies are read from: with one torch thread, the CPU time of the calling
    thread (``time.thread_time``), which does not advance while other processes hold the core,
    so a busy shared machine does not inflate it; with several threads, wall time."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


def median_latency_ms(nets: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict:
    """Median time (ms, ``latency_clock``) of one forward pass of each net on ``x``, the nets
    timed in turn within every repeat so that a slow period of the machine hits all alike."""
    clock = latency_clock()
    times: dict[str, list[float]] = {k: [] for k in nets}
    with torch.inference_mode():
        for net in nets.values():  # warm-up
            for _ in range(3):
                net(x)
        for _ in range(repeats):
            for name, net in nets.items():
                t0 = clock()
                net(x)
                times[name].append((clock() - t0) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def export_measurements(
    model: nn.Module,
    layout: str = "auto",
    x: torch.Tensor | None = None,
    repeats: int = 0,
    batches=(1, 256),
) -> dict:
    """Bytes of the export against the dense float32 reference and, given inputs ``x`` and
    ``repeats`` > 0, the latency ratios (export / dense) at each batch size (rows of ``x``,
    repeated cyclically when ``x`` has fewer)."""
    state, dense = export_state(model, layout), dense_reference_state(model)
    size, dense_size = len(serialized(state)), len(serialized(dense))
    out = {
        "export_bytes": size,
        "dense_bytes": dense_size,
        "export_size_percent": 100.0 * size / dense_size,
    }
    if x is not None and repeats > 0:
        nets = {"export": build_layers(state["layers"]), "dense": build_layers(dense["layers"])}
        for batch in batches:
            rows = torch.arange(batch, device=x.device) % len(x)
            t = median_latency_ms(nets, x[rows].cpu(), repeats)
            out[f"latency_ratio_b{batch}"] = t["export"] / t["dense"]
    return out


def posterior_state(model: nn.Module, layout: str = "auto", meta=None) -> dict:
    """The full-size export of ``model`` with the posterior's σ beside every mean
    (``export.posterior=true``; bbbprune.deploy.formats.add_posterior)."""
    from .formats import add_posterior

    return add_posterior(export_state(model, layout, structured=False, meta=meta), model)


def _format_bytes(state: dict, fmt: str) -> bytes:
    from .formats import safetensors_bytes

    return safetensors_bytes(state) if fmt == "safetensors" else serialized(state)


def _sampled_error(path: Path, data, samples: int, seed: int) -> float:
    """Test error (%) of the sampled predictive of a posterior export (``samples`` passes)."""
    from .export_loader import sampled_log_probs

    torch.manual_seed(seed)
    lp = sampled_log_probs(load_exported(path, sample=True), data.x_test, samples)
    return 100.0 * (lp.argmax(1) != data.y_test).float().mean().item()


def export_run(
    run_dir: Path,
    loaded: tuple,
    criterion: str,
    fraction: float,
    layout: str = "auto",
    path=None,
    scope: str = "global",
    seed: int = 0,
    fmt: str = "pt",
    posterior: bool = False,
) -> dict:
    """Prune the trained model of ``run_dir`` (``loaded``: its config, method and model, as
    bbbprune.run.identity.load_run returns them) by a criterion at a fraction, or ``native``: the
    method's own rule; export it as ``fmt`` (pt, safetensors, onnx: bbbprune.deploy.formats;
    ``posterior``: with σ beside the means), reload the file (plain-torch loader; onnxruntime
    for ONNX) and check it against the masked model on the test set. Returns what was written
    and measured."""
    from .formats import FORMATS, onnx_logits, write_format

    check_choice("export.layout", layout, LAYOUTS)
    check_choice("export.format", fmt, FORMATS)
    if posterior and fmt == "onnx":
        raise UserError("export.posterior=true needs export.format=pt or safetensors, not onnx")
    run_dir = Path(run_dir)
    cfg, method, model = loaded[:3]
    model.eval()
    if criterion == "native":
        masks = method.native_masks(model)
        if masks is None:
            raise UserError(
                f"method {method.name} has no pruning rule of its own; valid criteria: "
                f"{', '.join(method.criteria)}"
            )
        apply_masks(model, masks)
    else:
        if criterion not in method.criteria:
            raise UserError(
                f"criterion {criterion!r} does not apply to method {method.name}; valid: "
                f"{', '.join((*method.criteria, 'native'))}"
            )
        prune_model(model, criterion, fraction, scope, seed)
    sp = sparsity(model)["sparsity"]
    meta = {
        "run": run_dir.name,
        "method": method.name,
        "criterion": criterion,
        "fraction": None if criterion == "native" else float(fraction),
        "sparsity": sp,
        "weights": "posterior mean" if method.prediction_modes != ("mean",) else "point estimate",
        "dataset": cfg.dataset.name,
        "pixel_scale": float(cfg.dataset.pixel_scale),
        "mean": None if cfg.dataset.get("mean") is None else list(cfg.dataset.mean),
        "std": None if cfg.dataset.get("std") is None else list(cfg.dataset.std),
    }
    state = (
        posterior_state(model, layout, meta)
        if posterior
        else export_state(model, layout, meta=meta)
    )
    if path is None:
        tag = "native" if criterion == "native" else f"{criterion}_{float(fraction):.4f}"
        tag += f"_{layout}" if fmt != "onnx" else "_dense"
        path = run_dir / "exports" / f"{tag}{'_posterior' if posterior else ''}.{fmt}"
    data = load_tensors(cfg.dataset, "cpu", log=lambda *_: None)
    size = write_format(Path(path), state, fmt, data.x_test)
    dense_size = len(serialized(dense_reference_state(model)))
    with torch.inference_mode():
        masked = model(data.x_test)
        if fmt == "onnx":
            reloaded = onnx_logits(Path(path).read_bytes(), data.x_test)
        else:
            reloaded = load_exported(path)(data.x_test)
    extra = {}
    if posterior:  # what σ costs: the same full-size file without it
        means_only = export_state(model, layout, structured=False, meta=meta)
        extra["posterior_bytes"] = size - len(_format_bytes(means_only, fmt))
        extra["sampled_error"] = _sampled_error(path, data, method.eval_samples, seed)
    return {
        **extra,
        "path": str(path),
        "export_bytes": size,
        "dense_bytes": dense_size,
        "export_size_percent": 100.0 * size / dense_size,
        "sparsity": sp,
        "kept_widths": kept_widths(shrink(model)),
        "error": 100.0 * (reloaded.argmax(1) != data.y_test).float().mean().item(),
        "max_abs_diff": (masked - reloaded).abs().max().item(),
        "same_predictions": bool((masked.argmax(1) == reloaded.argmax(1)).all()),
    }
