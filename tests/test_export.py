"""ONNX and TorchScript export of encoder + AdaIN + decoder, checked against PyTorch.

Parity: fp32 on CPU, random-init decoder (seed 0), contents of 64x72 and 37x50 (not multiples of
8: the in-graph padding is exercised), max abs difference of the [0, 1] outputs <= 1e-4
(measured about 2e-6 with onnxruntime 1.32).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import stylekit
from stylekit import AdaINModel, ArgumentError, Decoder, StyleTransfer, VGGEncoder, _deps
from stylekit.cli import main
from stylekit.export import INPUT_NAMES, StylizeGraph, export_onnx, export_torchscript

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny_model() -> AdaINModel:
    torch.manual_seed(0)
    return AdaINModel(VGGEncoder.from_pretrained(), Decoder()).eval()


@pytest.fixture(scope="module")
def onnx_file(tiny_model: AdaINModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(tmp_path_factory.mktemp("onnx") / "m.onnx", model=tiny_model)


def _inputs(h: int, w: int, batch: int = 1, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, h, w, generator=g), torch.rand(1, 3, 40, 48, generator=g)


def _run(path: Path, c: torch.Tensor, s: torch.Tensor, alpha: float) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"content": c.numpy(), "style": s.numpy(), "alpha": np.array(alpha, np.float32)}
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("h, w, batch, alpha", [(64, 72, 1, 1.0), (37, 50, 2, 0.6)])
def test_onnx_matches_pytorch(onnx_file, tiny_model, h, w, batch, alpha):
    c, s = _inputs(h, w, batch)
    got = _run(onnx_file, c, s, alpha)
    assert got.shape == (batch, 3, h, w) and got.dtype == np.float32
    # the same numbers as the library's own path (pad to 8, stylise, crop, clamp)
    want = StyleTransfer("cpu", "fp32", model=tiny_model)(c, s, alpha).numpy()
    err = float(np.abs(got - want).max())
    assert err <= TOL, f"ONNX vs PyTorch max abs error {err:.2e}"
    assert 0.2 < float(((want > 0) & (want < 1)).mean())  # not a comparison of saturated pixels


def test_onnx_file_is_self_contained_and_described(onnx_file):
    assert not list(onnx_file.parent.glob("*.data"))  # weights inside, no external data file
    m = onnx.load(str(onnx_file))
    assert {o.domain: o.version for o in m.opset_import}[""] == 17
    assert [i.name for i in m.graph.input] == list(INPUT_NAMES)
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["stylekit_version"] == stylekit.__version__
    assert 20e6 < onnx_file.stat().st_size < 40e6  # fp32 encoder up to relu4_1 + decoder


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_pytorch(tiny_model, tmp_path):
    path = export_torchscript(tmp_path / "m.pt", model=tiny_model)
    extra = {"stylekit.json": ""}
    ts = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["stylekit.json"])["stylekit_version"] == stylekit.__version__  # JSON, as named
    graph = StylizeGraph(tiny_model)
    for h, w in [(64, 72), (37, 50)]:  # traced at 56x72: other sizes must work too
        c, s = _inputs(h, w)
        with torch.inference_mode():
            want, got = graph(c, s, torch.tensor(0.7)), ts(c, s, torch.tensor(0.7))
        assert got.shape == (1, 3, h, w)
        assert float((got - want).abs().max()) <= TOL


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_decoder_alone_is_paired_with_the_shipped_encoder(tiny_model, tmp_path):
    path = export_torchscript(tmp_path / "d.pt", model=tiny_model.decoder)
    c, s = _inputs(32, 32)
    with torch.inference_mode():
        want = StylizeGraph(tiny_model)(c, s, torch.tensor(1.0))
        assert torch.allclose(torch.jit.load(str(path))(c, s, torch.tensor(1.0)), want, atol=TOL)


def test_export_leaves_the_model_alone(tmp_path):
    torch.manual_seed(0)
    model = AdaINModel(VGGEncoder.from_pretrained(), Decoder()).train()
    export_torchscript(tmp_path / "m.pt", model=model)
    assert model.decoder.training and next(model.decoder.parameters()).requires_grad


@pytest.mark.parametrize(
    "kwargs, message",
    [({"path": "m.txt"}, "should end in"), ({"opset": 9}, "opset"), ({"opset": "17"}, "opset"),
     ({"model": "decoder.safetensors"}, "model must be"), ({"opset": 17, "dynamo": True}, "opset 18")],
)  # fmt: skip
def test_bad_arguments(tmp_path, kwargs, message):
    kwargs = {"path": tmp_path / "m.onnx", **kwargs}
    with pytest.raises(ArgumentError, match=message):
        export_onnx(kwargs.pop("path"), **kwargs)


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    real = _deps.importlib.import_module

    def fake(name, *a):
        if name == "onnx":
            raise ImportError("No module named 'onnx'")
        return real(name, *a)

    monkeypatch.setattr(_deps.importlib, "import_module", fake)
    with pytest.raises(stylekit.MissingDependencyError, match=r"stylekit-nst\[export\]") as info:
        export_onnx(tmp_path / "m.onnx")
    # public as stylekit.MissingDependencyError (also in stylekit.errors): a StylekitError and an ImportError
    assert isinstance(info.value, stylekit.StylekitError) and isinstance(info.value, ImportError)
    assert stylekit.errors.MissingDependencyError is _deps.MissingDependencyError


def test_cli_export_onnx(tiny_model, tmp_path, capsys):
    dec = tmp_path / "dec.safetensors"
    tiny_model.decoder.save(dec, dtype=torch.float32)
    out = tmp_path / "cli.onnx"
    assert main(["export", "--format", "onnx", "-o", str(out), "--decoder", str(dec)]) == 0
    assert f"wrote {out} (onnx" in capsys.readouterr().out
    c, s = _inputs(40, 48)
    want = StylizeGraph(tiny_model)(c, s, torch.tensor(0.5)).detach().numpy()
    assert float(np.abs(_run(out, c, s, 0.5) - want).max()) <= TOL


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("STYLEKIT_TEST_DYNAMO"), reason="about 30-100 s on 2 cores: set STYLEKIT_TEST_DYNAMO=1")
def test_dynamo_exporter(tiny_model, tmp_path):
    pytest.importorskip("onnxscript")
    path = export_onnx(tmp_path / "dyn.onnx", model=tiny_model, opset=18, dynamo=True)
    assert {o.domain: o.version for o in onnx.load(str(path)).opset_import}[""] == 18
    c, s = _inputs(37, 50, batch=2)
    want = StylizeGraph(tiny_model)(c, s, torch.tensor(0.6)).detach().numpy()
    assert float(np.abs(_run(path, c, s, 0.6) - want).max()) <= TOL
