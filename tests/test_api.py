"""stylekit.api: StyleTransfer / transfer / Style with a tiny seeded model (random decoder) on CPU.

Only the tests marked ``needs_decoder`` use the shipped decoder weights; the rest check
shapes, types, errors and caching, for which an untrained decoder is as good as a trained one.
"""

from __future__ import annotations

import io
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import stylekit
from stylekit import (
    AdaINModel,
    ArgumentError,
    ImageError,
    ShapeError,
    Style,
    StyleTransfer,
    WeightsError,
    api,
    transfer,
)
from stylekit.weights import DECODER

needs_decoder = pytest.mark.skipif(
    not DECODER.exists(), reason="the shipped decoder weights (stylekit/weights/decoder.safetensors) are not there yet"
)
EXAMPLES = Path(stylekit.__file__).parent / "examples"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def st_cpu(tiny_model: AdaINModel) -> StyleTransfer:
    return StyleTransfer("cpu", "fp32", model=tiny_model)


@pytest.fixture
def cached_tiny(monkeypatch: pytest.MonkeyPatch, tiny_model: AdaINModel) -> list[torch.device]:
    """An empty model cache whose builder returns the tiny model; the list records every build."""
    builds: list[torch.device] = []

    def build(device: torch.device) -> AdaINModel:
        builds.append(device)
        return api._prepare(tiny_model, device)

    monkeypatch.setattr(api, "_MODELS", {})
    monkeypatch.setattr(api, "_build_model", build)
    return builds


def gradient(w: int, h: int) -> np.ndarray:
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None].repeat(w, 1)
    return np.stack([x, y, 1 - x * y], axis=2)


@pytest.fixture(scope="module")
def style_img() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------- input kind round trips


def _content(kind: str, tmp_path: Path, w: int = 53, h: int = 37):
    arr = gradient(w, h)
    u8 = (arr * 255).round().astype(np.uint8)
    if kind in ("path", "bytes", "file"):
        p = tmp_path / "c.png"
        Image.fromarray(u8).save(p)
        return {"path": p, "bytes": p.read_bytes(), "file": io.BytesIO(p.read_bytes())}[kind]
    return {
        "pil": lambda: Image.fromarray(u8),
        "uint8": lambda: u8,
        "uint16": lambda: u8.astype(np.uint16) * 257,
        "float32": lambda: arr,
        "float64": lambda: arr.astype(np.float64),
        "gray": lambda: u8[..., 0],
        "chw": lambda: torch.from_numpy(arr).permute(2, 0, 1).contiguous(),
        "bchw": lambda: torch.from_numpy(arr).permute(2, 0, 1)[None].repeat(2, 1, 1, 1),
        "bf16": lambda: torch.from_numpy(arr).permute(2, 0, 1).to(torch.bfloat16),
    }[kind]()


KINDS = ["path", "bytes", "file", "pil", "uint8", "uint16", "float32", "float64", "gray", "chw", "bchw", "bf16"]


def _check_same_kind(kind: str, content, out, w: int = 53, h: int = 37) -> None:
    if kind in ("path", "bytes", "file", "pil"):
        assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (w, h)
    elif kind == "gray":
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (h, w, 3)
    elif isinstance(content, np.ndarray):
        assert isinstance(out, np.ndarray) and out.dtype == content.dtype and out.shape == content.shape
        assert out.min() >= 0 and out.max() <= {np.uint8: 255, np.uint16: 65535}.get(out.dtype.type, 1)
    else:
        assert isinstance(out, torch.Tensor)
        assert out.shape == content.shape and out.dtype == content.dtype and out.device == content.device
        assert not out.requires_grad and not out.is_inference()
        assert 0 <= float(out.min()) <= float(out.max()) <= 1


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_every_input_kind(st_cpu: StyleTransfer, style_img: Image.Image, tmp_path: Path, kind: str) -> None:
    content = _content(kind, tmp_path)  # 53 x 37: neither side a multiple of 8
    out = st_cpu(content, style_img, alpha=0.7)
    _check_same_kind(kind, content, out)


def test_transfer_uses_cache_and_returns_input_kind(
    cached_tiny: list[torch.device], style_img: Image.Image, tmp_path: Path
) -> None:
    for kind in ("path", "uint8", "chw"):
        content = _content(kind, tmp_path)
        _check_same_kind(kind, content, transfer(content, style_img, 0.5, device="cpu", dtype="fp32"))
    assert cached_tiny == [CPU]  # built once, then reused


def test_tensor_result_is_an_ordinary_tensor(st_cpu: StyleTransfer, style_img: Image.Image) -> None:
    out = st_cpu(torch.rand(3, 32, 32), style_img)
    out.mul_(0.5)  # an inference-mode tensor would refuse this in-place update
    assert out.dtype == torch.float32


@given(h=st.integers(16, 41), w=st.integers(16, 41))
@settings(max_examples=6, deadline=None)
def test_output_has_content_size_exactly(tiny_model: AdaINModel, h: int, w: int) -> None:
    stx = StyleTransfer("cpu", "fp32", model=tiny_model)
    out = stx(torch.rand(3, h, w), torch.rand(3, 24, 24))
    assert out.shape == (3, h, w)


def test_size_resizes_content_and_style(st_cpu: StyleTransfer, tmp_path: Path) -> None:
    content = Image.fromarray((gradient(48, 32) * 255).astype(np.uint8))
    out = st_cpu(content, torch.rand(3, 64, 40), size=16)
    assert out.size == (24, 16)  # short side 16, aspect kept
    assert st_cpu(torch.rand(3, 40, 64), torch.rand(3, 64, 40), size=24).shape == (3, 24, 38)
    assert st_cpu.encode_style(torch.rand(3, 64, 40), size=16).mean.shape == (1, 512, 1, 1)


# ----------------------------------------------------------------------------- Style


def test_encode_style_reuse_matches_direct(st_cpu: StyleTransfer, style_img: Image.Image) -> None:
    content = torch.rand(1, 3, 32, 40)
    style = st_cpu.encode_style(style_img)
    assert isinstance(style, Style) and style.mean.dtype == style.std.dtype == torch.float32
    assert style.mean.shape == (1, 512, 1, 1) and not style.mean.is_inference()
    a = st_cpu(content, style, alpha=0.6)
    b = st_cpu(content, style_img, alpha=0.6)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(style.to("cpu").std, style.std)


def test_batched_content_one_style(st_cpu: StyleTransfer, style_img: Image.Image) -> None:
    content = torch.rand(3, 3, 24, 32)
    out = st_cpu(content, style_img)
    assert out.shape == (3, 3, 24, 32)
    single = st_cpu(content[1], style_img)
    assert torch.allclose(out[1], single, atol=1e-4)


def test_batched_styles(st_cpu: StyleTransfer) -> None:
    style = st_cpu.encode_style(torch.rand(2, 3, 24, 24))
    assert style.mean.shape == (2, 512, 1, 1)
    assert st_cpu(torch.rand(2, 3, 24, 24), style).shape == (2, 3, 24, 24)
    with pytest.raises(ShapeError, match="style batch 2"):
        st_cpu(torch.rand(3, 3, 24, 24), style)


def test_style_validates_shapes() -> None:
    with pytest.raises(ShapeError, match="Style.mean"):
        Style(torch.zeros(512), torch.ones(512))
    with pytest.raises(ShapeError, match="differ"):
        Style(torch.zeros(1, 512, 1, 1), torch.ones(2, 512, 1, 1))


# ----------------------------------------------------------------------------- alpha, size, device, dtype


def test_alpha_changes_result(st_cpu: StyleTransfer, style_img: Image.Image) -> None:
    content = torch.rand(3, 32, 32)
    zero, half, one = (st_cpu(content, style_img, alpha=a) for a in (0, 0.5, 1))
    assert not torch.allclose(zero, one)
    assert not torch.allclose(half, one) and not torch.allclose(half, zero)


@pytest.mark.parametrize("alpha", [0, 1, 0.25, np.float32(0.3), np.float64(1.0), Fraction(1, 2)])
def test_alpha_accepted(st_cpu: StyleTransfer, style_img: Image.Image, alpha: object) -> None:
    assert st_cpu(torch.rand(3, 16, 16), style_img, alpha=alpha).shape == (3, 16, 16)  # type: ignore[arg-type]


BAD_ALPHAS = [float("nan"), float("inf"), -0.01, 1.01, 2, -1, True, False, np.bool_(True), "0.5", None,
              torch.tensor(0.5), [0.5], 1j]  # fmt: skip


@pytest.mark.parametrize("alpha", BAD_ALPHAS, ids=repr)
def test_alpha_rejected(st_cpu: StyleTransfer, alpha: object) -> None:
    with pytest.raises(ArgumentError, match="alpha"):
        st_cpu(torch.rand(3, 16, 16), torch.rand(3, 16, 16), alpha=alpha)  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", BAD_ALPHAS[:6], ids=repr)
def test_transfer_checks_alpha_before_building_a_model(cached_tiny: list[torch.device], alpha: object) -> None:
    with pytest.raises(ArgumentError, match="alpha"):
        transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), alpha, device="cpu")  # type: ignore[arg-type]
    assert cached_tiny == []


@pytest.mark.parametrize("size", [15, 0, True, 32.0, "64"], ids=repr)
def test_size_rejected(st_cpu: StyleTransfer, cached_tiny: list[torch.device], size: object) -> None:
    with pytest.raises(ArgumentError, match="size"):
        st_cpu(torch.rand(3, 16, 16), torch.rand(3, 16, 16), size=size)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="size"):
        st_cpu.encode_style(torch.rand(3, 16, 16), size=size)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="size"):
        transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), size=size)  # type: ignore[arg-type]
    assert cached_tiny == []


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", 3.5])
def test_bad_device(tiny_model: AdaINModel, cached_tiny: list[torch.device], device: object) -> None:
    with pytest.raises(ArgumentError, match="device"):
        StyleTransfer(device, model=tiny_model)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="device"):
        transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), device=device)  # type: ignore[arg-type]
    assert cached_tiny == []


def test_tpu_message_names_the_device() -> None:
    with pytest.raises(ArgumentError, match="device='tpu'"):
        transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_unavailable(cached_tiny: list[torch.device]) -> None:
    with pytest.raises(ArgumentError, match="CUDA is not available"):
        transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), device="cuda")


@pytest.mark.parametrize("dtype", ["fp8", "int8", torch.int32, "half-ish"])
def test_bad_dtype(tiny_model: AdaINModel, dtype: object) -> None:
    with pytest.raises(ArgumentError, match="dtype"):
        StyleTransfer("cpu", dtype, model=tiny_model)  # type: ignore[arg-type]


def test_bf16_autocast_on_cpu(tiny_model: AdaINModel, style_img: Image.Image) -> None:
    stx = StyleTransfer("cpu", "bf16", model=tiny_model)
    assert stx.dtype == torch.bfloat16
    out = stx(np.zeros((16, 24, 3), np.float32), style_img)
    assert out.dtype == np.float32 and out.shape == (16, 24, 3)


def test_model_argument_checked() -> None:
    with pytest.raises(ArgumentError, match="model"):
        StyleTransfer("cpu", model=torch.nn.Identity())  # type: ignore[arg-type]


def test_bad_images_name_the_argument(st_cpu: StyleTransfer, tmp_path: Path) -> None:
    good = torch.rand(3, 16, 16)
    with pytest.raises(ImageError, match="content"):
        st_cpu(tmp_path / "missing.jpg", good)
    with pytest.raises(ImageError, match="style"):
        st_cpu(good, tmp_path / "missing.jpg")
    with pytest.raises(ShapeError, match="style"):
        st_cpu.encode_style(torch.rand(4, 16, 16))
    with pytest.raises(ImageError, match="content.*too small"):
        st_cpu(torch.rand(3, 15, 16), good)


# ----------------------------------------------------------------------------- model cache


def test_get_model_builds_once(cached_tiny: list[torch.device]) -> None:
    m1 = api.get_model("cpu", "fp32")
    m2 = api.get_model(torch.device("cpu"), torch.float32)
    assert m1 is m2 and cached_tiny == [CPU]
    assert StyleTransfer("cpu", "fp32").model is m1
    assert not m1.training and not any(p.requires_grad for p in m1.parameters())
    api.get_model("cpu", "bf16")  # another key
    assert len(cached_tiny) == 2
    api.clear_model_cache()
    api.get_model("cpu", "fp32")
    assert len(cached_tiny) == 3


def test_get_model_thread_safe(cached_tiny: list[torch.device]) -> None:
    results: list[AdaINModel] = []
    threads = [threading.Thread(target=lambda: results.append(api.get_model("cpu", "fp32"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(m is results[0] for m in results)
    assert cached_tiny == [CPU]


@pytest.mark.skipif(DECODER.exists(), reason="the shipped decoder is present")
def test_missing_decoder_raises_weights_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_MODELS", {})
    with pytest.raises(WeightsError, match="decoder"):
        transfer(torch.rand(3, 16, 16), torch.rand(3, 16, 16), device="cpu")
    assert api._MODELS == {}  # nothing half-built is cached


# ----------------------------------------------------------------------------- with the shipped weights


@needs_decoder
def test_shipped_model_is_cached() -> None:
    assert api.get_model("cpu", "fp32") is api.get_model("cpu", "fp32")
    assert StyleTransfer("cpu", "fp32").model is api.get_model("cpu", "fp32")


@needs_decoder
def test_transfer_shipped_weights() -> None:
    cat, wave = EXAMPLES / "chelsea_cat.jpg", EXAMPLES / "renoir_the_wave_1879_aic81557.jpg"
    out = transfer(cat, wave, 0.8, device="cpu", dtype="fp32", size=48)
    assert isinstance(out, Image.Image) and min(out.size) == 48
    assert np.asarray(out, np.float32).std() > 5  # not a flat image
    style = StyleTransfer("cpu", "fp32").encode_style(wave, size=64)
    small = np.asarray(Image.open(cat).convert("RGB").resize((37, 53)))
    res = transfer(small, style, device="cpu", dtype="fp32")
    assert res.shape == small.shape and res.dtype == np.uint8
    recon = transfer(small.astype(np.float32) / 255, style, alpha=0.0, device="cpu", dtype="fp32")
    assert np.abs(recon - small / 255).mean() < 0.25  # alpha=0 decodes roughly the content back
