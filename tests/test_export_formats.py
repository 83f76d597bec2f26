"""Portable exports (bbbprune.deploy.formats): safetensors reloads without pickle and computes
what the masked model does, CSR layers are stored as their three arrays, the posterior's σ
gives the sampled predictive, ONNX runs in onnxruntime; damaged files are refused whole."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from test_export import _model

from bbbprune.deploy.export import export_run as export
from bbbprune.deploy.export import export_state, posterior_state
from bbbprune.deploy.export_loader import ExportFileError, SampledLinear, load_exported
from bbbprune.deploy.formats import onnx_bytes, onnx_logits, safetensors_bytes
from bbbprune.errors import UserError
from bbbprune.pruning.criteria import prune_model
from bbbprune.run.checkpoints import load_run
from bbbprune.run.loop import train

safetensors = pytest.importorskip("safetensors")
pytest.importorskip("onnxruntime")


def no_pickle(monkeypatch):
    """Any unpickling (pickle, torch.load) fails from now on."""

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize(
    ("method", "model", "criterion", "layout"),
    [
        ("sgd", "mlp", "magnitude", "auto"),
        ("bbb", "mlp", "snr", "sparse"),
        ("svd_group", "mlp", "log_alpha", "auto"),
        ("sgd", "lenet5", "magnitude", "sparse"),
    ],
)
def test_safetensors_reloads_without_pickle_and_reproduces_the_masked_model(
    smoke_cfg, tmp_path, monkeypatch, method, model, criterion, layout
):
    m, net = _model(smoke_cfg, method, model)
    prune_model(net, criterion, 0.9)
    x = torch.rand(64, 1, 28, 28)
    expected = m.predict_log_probs(net, x, "mean")
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(export_state(net, layout, meta={"run": "r"})))
    no_pickle(monkeypatch)
    loaded = load_exported(path)
    with torch.no_grad():
        got = torch.log_softmax(loaded(x), -1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_csr_layers_are_three_arrays_and_the_architecture_is_in_the_metadata(smoke_cfg, tmp_path):
    _, net = _model(smoke_cfg, "bbb")
    prune_model(net, "snr", 0.95)
    state = export_state(net, "sparse", meta={"method": "bbb"})
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(state))
    with safetensors.safe_open(str(path), "pt") as fh:  # safetensors' own reader
        meta, names = fh.metadata(), set(fh.keys())
        first = next(i for i, layer in enumerate(state["layers"]) if layer["op"] == "linear")
        w = state["layers"][first]["weight"]
        for part in ("crow_indices", "col_indices", "values"):
            assert torch.equal(fh.get_tensor(f"{first}.weight.{part}"), w[part])
    assert meta["format"] == "bbbprune-export" and meta["version"] == "1"
    assert json.loads(meta["meta"]) == {"method": "bbb"}
    ops = [layer["op"] for layer in json.loads(meta["layers"])]
    assert ops == [layer["op"] for layer in state["layers"]]
    assert f"{first}.bias" in names and f"{first}.weight.crow_indices" in names


def _file(smoke_cfg, tmp_path):
    _, net = _model(smoke_cfg, "sgd")
    prune_model(net, "magnitude", 0.9)
    return safetensors_bytes(export_state(net, "sparse"))


def _with_metadata(data: bytes, change) -> bytes:
    """The same tensors with the header's metadata changed by ``change(metadata)``."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    change(header["__metadata__"])
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def _shape_lie(meta):
    layers = json.loads(meta["layers"])
    linear = next(layer for layer in layers if layer["op"] == "linear")
    linear["weight"]["shape"][0] += 1
    meta["layers"] = json.dumps(layers)


def _missing_tensor(meta):
    layers = json.loads(meta["layers"])
    next(layer for layer in layers if layer["op"] == "linear")["bias"] = {"tensor": "gone"}
    meta["layers"] = json.dumps(layers)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _with_metadata(d, lambda m: m.update(version="2")), "format version 2"),
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:5], "truncated"),
        (lambda d: _with_metadata(d, _shape_lie), "metadata and tensors disagree"),
        (lambda d: _with_metadata(d, _missing_tensor), "metadata and tensors disagree"),
    ],
    ids=["version", "truncated", "truncated-header", "shape", "missing-tensor"],
)
def test_a_bad_file_is_one_user_error_and_nothing_is_loaded(smoke_cfg, tmp_path, damage, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(damage(_file(smoke_cfg, tmp_path)))
    with pytest.raises(ExportFileError, match=message) as err:
        load_exported(path)
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)


def test_the_posterior_export_samples_weights_with_their_sigma(smoke_cfg, tmp_path):
    """One layer's sampled outputs have the closed-form variance Σ_i x_i² σ_ji² + σ_b,j² of
    y_j = Σ_i w_ji x_i + b_j with independent w ~ N(μ, σ²), and their mean is the mean net's."""
    _, net = _model(smoke_cfg, "bbb")
    prune_model(net, "snr", 0.5)
    with torch.no_grad():  # posterior σ large enough to see
        for layer in (net.net[1], net.net[3], net.net[5]):
            layer.weight_rho.normal_(-1.0, 0.3)
            layer.bias_rho.fill_(-1.0)
    state = posterior_state(net, "sparse")
    path = tmp_path / "posterior.safetensors"
    path.write_bytes(safetensors_bytes(state))
    sampled = load_exported(path, sample=True)
    first = next(m for m in sampled if isinstance(m, SampledLinear))
    layer = net.net[1]
    x = torch.rand(1, 784)
    torch.manual_seed(0)
    with torch.no_grad():
        draws = torch.cat([first(x) for _ in range(4000)])
        mask = layer.weight_mask
        var = (x.square() @ (layer.weight_sigma() * mask).square().T).squeeze(0)
        var += torch.nn.functional.softplus(layer.bias_rho).square()
        mean = torch.nn.functional.linear(x, layer.weight_mu * mask, layer.bias_mu).squeeze(0)
    torch.testing.assert_close(draws.var(0), var, rtol=0.12, atol=0)
    assert ((draws.mean(0) - mean).abs() < 4 * (var / 4000).sqrt()).all()
    # the mean network of the same file is the masked model
    torch.testing.assert_close(load_exported(path)(x), net(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["mlp", "lenet5"])
def test_onnx_export_runs_in_onnxruntime_with_the_same_outputs(smoke_cfg, model):
    _, net = _model(smoke_cfg, "bbb" if model == "mlp" else "sgd", model)
    prune_model(net, "snr" if model == "mlp" else "magnitude", 0.9)
    x = torch.rand(33, 1, 28, 28)  # another batch size than the export's example
    state = export_state(net, "auto")
    got = onnx_logits(onnx_bytes(state, x), x)
    with torch.no_grad():
        torch.testing.assert_close(got, net(x), atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # a training and three exports checked on the test set (about 25 s)
def test_export_command_writes_safetensors_posterior_and_onnx(smoke_cfg, tmp_path):
    run_dir = train(smoke_cfg("method=bbb", "prune.fractions=[0.0]"), log=lambda *_: None)

    def export_run(*args, **kwargs):  # each export from a freshly loaded run
        return export(run_dir, load_run(run_dir, torch.device("cpu")), *args, **kwargs)

    st = export_run("snr", 0.9, "auto", fmt="safetensors")
    assert st["path"].endswith("snr_0.9000_auto.safetensors") and st["max_abs_diff"] < 1e-4
    post = export_run("snr", 0.9, "auto", fmt="safetensors", posterior=True)
    assert post["path"].endswith("_posterior.safetensors")
    assert post["posterior_bytes"] > 0 and 0 <= post["sampled_error"] <= 100
    onnx = export_run("snr", 0.9, "auto", fmt="onnx")
    assert onnx["path"].endswith(".onnx") and onnx["max_abs_diff"] < 1e-4
    with pytest.raises(UserError, match="unknown export.format 'h5'"):
        export_run("snr", 0.9, fmt="h5")
