"""Exported models: the file reloads with torch alone and computes what the masked model does;
the sparse layout is the CSR of the weight; sizes follow the byte count of the arrays."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import bbbprune.deploy.export_loader as loader_module
from bbbprune.deploy.export import (
    csr_bytes,
    dense_reference_state,
    export_run,
    export_state,
    pack_weight,
    save_export,
)
from bbbprune.deploy.export_loader import load_exported
from bbbprune.errors import UserError
from bbbprune.methods import build_method
from bbbprune.nets.models import build_model
from bbbprune.pruning.criteria import prune_model
from bbbprune.pruning.masking import apply_masks
from bbbprune.run.checkpoints import load_run
from bbbprune.run.loop import train


def _model(smoke_cfg, method: str, model: str = "mlp"):
    cfg = smoke_cfg(f"method={method}")
    m = build_method(cfg.method)
    spec = {"name": model, "hidden": [32, 16], "conv": [4, 6], "fc": 12}
    spec.update(input_shape=[1, 28, 28], n_classes=10, dropout=m.dropout)
    torch.manual_seed(0)
    return m, build_model(spec, m.layer_factory()).eval()


@pytest.mark.parametrize(
    ("method", "model", "criterion"),
    [
        ("sgd", "mlp", "magnitude"),
        ("dropout", "mlp", "magnitude"),
        ("bbb", "mlp", "snr"),
        ("svd_group", "mlp", "log_alpha"),
        ("sgd", "lenet5", "magnitude"),
    ],
)
@pytest.mark.parametrize("layout", ["auto", "sparse", "dense"])
def test_export_reloads_and_reproduces_the_masked_model(
    smoke_cfg, tmp_path, method, model, criterion, layout
):
    m, net = _model(smoke_cfg, method, model)
    prune_model(net, criterion, 0.9)
    x = torch.rand(64, 1, 28, 28)
    expected = m.predict_log_probs(net, x, "mean")  # the mean-weights predictive
    with torch.no_grad():
        expected_logits = net(x)  # evaluation mode: mean weights, no dropout
    path = tmp_path / "model.pt"
    save_export(path, export_state(net, layout))
    loaded = load_exported(path)
    with torch.no_grad():
        logits = loaded(x)
    # the logits themselves (log-probabilities alone would not see a shift shared by all classes)
    torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.log_softmax(logits, -1), expected, atol=1e-5, rtol=1e-5)


def test_loader_imports_nothing_but_torch_and_safetensors():
    """Besides the standard library: torch, safetensors, and bbbprune's UserError only inside a
    try (a copy of the file runs without bbbprune)."""
    tree = ast.parse(Path(loader_module.__file__).read_text())
    optional = {
        a.module
        for t in ast.walk(tree)
        if isinstance(t, ast.Try)
        for a in t.body
        if isinstance(a, ast.ImportFrom)
    }
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module not in optional:
            modules.add("." if node.level else node.module.split(".")[0])
    assert optional == {"bbbprune.errors"}
    assert modules <= {"torch", "safetensors", "__future__", "json", "math", "struct", "pathlib"}


def test_sparse_layout_is_the_csr_of_the_weight():
    w = torch.tensor([[0.0, 1.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, -3.0]])
    packed = pack_weight(w, "sparse")
    assert packed["layout"] == "csr" and packed["shape"] == [3, 4]
    assert packed["crow_indices"].tolist() == [0, 1, 1, 3]
    assert packed["col_indices"].tolist() == [1, 0, 3]
    assert packed["col_indices"].dtype == torch.int16  # 4 columns fit in int16
    assert packed["values"].tolist() == [1.5, 2.0, -3.0]
    # 3 values · (4 + 2) bytes + 4 row pointers · 4 bytes
    assert csr_bytes(w) == 3 * 6 + 4 * 4
    # auto: CSR (34 bytes) beats dense (48 bytes) here, not for a full matrix
    assert pack_weight(w, "auto")["layout"] == "csr"
    assert pack_weight(torch.ones(3, 4), "auto")["layout"] == "dense"


def test_a_sparse_export_is_smaller_than_the_dense_float32_file(smoke_cfg, tmp_path):
    _, net = _model(smoke_cfg, "bbb")
    prune_model(net, "snr", 0.9)
    small = save_export(tmp_path / "a.pt", export_state(net, "auto"))
    dense = save_export(tmp_path / "b.pt", dense_reference_state(net))
    n_weights = 784 * 32 + 32 * 16 + 16 * 10
    # the dense file holds at least every float32 weight; the sparse one at most 10 % of them
    # at 6 bytes each (15 % of the dense bytes) plus biases, row pointers and the zip framing
    # of every tensor (a few kB, large against this tiny net)
    assert dense >= 4 * n_weights
    assert small < 0.25 * dense


def test_export_command_checks_the_file_against_the_masked_model(smoke_cfg, tmp_path):
    run_dir = train(smoke_cfg("method=bbb", "prune.fractions=[0.0]"), log=lambda *_: None)
    loaded = load_run(run_dir, torch.device("cpu"))
    info = export_run(run_dir, loaded, "snr", 0.9, "auto")
    assert Path(info["path"]).exists() and info["same_predictions"]
    assert info["max_abs_diff"] < 1e-4
    assert info["sparsity"] == pytest.approx(0.9, abs=1e-3)
    with pytest.raises(UserError, match="no pruning rule of its own"):
        export_run(run_dir, loaded, "native", 0.0)
    with pytest.raises(UserError, match="does not apply"):
        export_run(run_dir, loaded, "log_alpha", 0.5)


def test_a_structured_export_is_physically_smaller(smoke_cfg, tmp_path):
    """Whole hidden units masked away are gone from the exported dense network, which computes
    the masked model's logits."""
    _, net = _model(smoke_cfg, "sgd")
    first = net.net[1]
    mask = torch.ones_like(first.weight)
    mask[:20] = 0.0  # 20 of the 32 first-layer units get no input: they are constants
    apply_masks(
        net,
        {
            n: torch.ones_like(m.weight)
            for n, m in net.named_modules()
            if hasattr(m, "set_weight_mask")
        }
        | {"net.1": mask},
    )
    state = export_state(net, "dense")
    linear = [layer for layer in state["layers"] if layer["op"] == "linear"]
    assert [lin["weight"]["shape"] for lin in linear] == [[12, 784], [16, 12], [10, 16]]
    save_export(tmp_path / "small.pt", state)
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(
            load_exported(tmp_path / "small.pt")(x), net(x), atol=1e-5, rtol=1e-5
        )
