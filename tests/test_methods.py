"""method= of stylekit.transfer (issue #4): "wct" (stylekit.wct) and "gatys" (stylekit.gatys)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylekit
from stylekit import AdaINModel, ArgumentError, ShapeError, StyleTransfer, api, transfer
from stylekit.gatys import INITS, gatys, gram
from stylekit.style import Style
from stylekit.wct import WCT, coloring_matrix, mean_cov, wct, whitening_matrix

EXAMPLES = Path(stylekit.__file__).parent / "examples"


def example(name: str, short: int) -> torch.Tensor:
    img = Image.open(EXAMPLES / name).convert("RGB")
    s = short / min(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    return torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def cat() -> torch.Tensor:
    return example("chelsea_cat.jpg", 64)


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    return example("renoir_the_wave_1879_aic81557.jpg", 64)


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    builds: list[torch.device] = []
    monkeypatch.setattr(api, "_MODELS", {})
    monkeypatch.setattr(api, "_build_model", lambda device: builds.append(device))
    return builds


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _correlated(seed: int, b: int, c: int, h: int, w: int, shift: float = 0.0) -> torch.Tensor:
    mix = _randn(seed, b, c, c)
    return torch.einsum("bij,bjhw->bihw", mix, _randn(seed + 1, b, c, h, w)) + shift


# ----------------------------------------------------------------------------- WCT math


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wct_gives_the_style_covariance(seed: int) -> None:
    content = _correlated(seed, 2, 16, 12, 12, shift=1.0)
    style = _correlated(seed + 10, 2, 16, 9, 11, shift=-3.0) * 5
    out = wct(content, style)
    assert out.shape == content.shape and out.dtype == content.dtype
    m_out, c_out = mean_cov(out)
    m_s, c_s = mean_cov(style)
    torch.testing.assert_close(m_out, m_s, atol=1e-4 * float(c_s.abs().max()) ** 0.5, rtol=0)
    assert float((c_out - c_s).abs().max()) < 1e-4 * float(c_s.abs().max())


def test_whitening_makes_the_identity() -> None:
    f = _correlated(3, 1, 8, 10, 10)
    m, c = mean_cov(f)
    white = whitening_matrix(c) @ (f.double().flatten(2) - m.flatten(2))
    torch.testing.assert_close(white @ white.transpose(1, 2) / 100, torch.eye(8, dtype=torch.float64)[None], atol=1e-6, rtol=0)
    torch.testing.assert_close(coloring_matrix(c) @ coloring_matrix(c), c, atol=1e-8, rtol=1e-6)


def test_rank_deficient_style_and_dead_content_channels_stay_finite() -> None:
    style = _correlated(4, 1, 16, 6, 6)
    style[:, 5:] = 0  # 11 dead channels: rank 5
    content = _correlated(5, 1, 16, 8, 8)
    content[:, :3] = 0  # dead in the content too
    for c, s in [(content, style), (_correlated(6, 1, 16, 3, 3), style), (torch.zeros(1, 16, 4, 4), style)]:
        out = wct(c, s)
        assert torch.isfinite(out).all()
    out = wct(_correlated(7, 1, 16, 12, 12), style)
    m_out, c_out = mean_cov(out)
    assert float((c_out - mean_cov(style)[1]).abs().max()) < 1e-4 * float(mean_cov(style)[1].abs().max())


def test_wct_broadcasts_and_checks() -> None:
    content, style = _correlated(8, 3, 6, 5, 5), _correlated(9, 1, 6, 5, 5)
    out = wct(content, style)
    torch.testing.assert_close(out[1:2], wct(content[1:2], style), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(WCT()(content, style), out)
    torch.testing.assert_close(wct(content, mean_cov(style)), out)
    with pytest.raises(ShapeError, match="style batch"):
        wct(content, _correlated(9, 2, 6, 5, 5))
    with pytest.raises(ShapeError, match="channels"):
        wct(content, _correlated(9, 1, 5, 5, 5))
    with pytest.raises(ShapeError):
        wct(torch.zeros(6, 5, 5), style)


def test_wct_under_bf16() -> None:
    content, style = _correlated(10, 1, 8, 6, 6).bfloat16(), _correlated(11, 1, 8, 6, 6).bfloat16()
    out = wct(content, style)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ----------------------------------------------------------------------------- method="wct"


def test_method_wct(stx: StyleTransfer, cat, wave) -> None:
    out = stx(cat, wave, method="wct")
    assert out.shape == cat.shape and not torch.allclose(out, stx(cat, wave), atol=1e-3)
    style = stx.encode_style(wave, method="wct")
    assert style.cov is not None and style.cov.shape == (1, 512, 512)
    torch.testing.assert_close(stx(cat, style, method="wct"), out, atol=1e-4, rtol=0)
    torch.testing.assert_close(stx(cat, wave, method="wct", alpha=0.0), stx(cat, wave, alpha=0.0))
    with pytest.raises(ArgumentError, match="wct.*encode_style"):
        stx(cat, stx.encode_style(wave), method="wct")
    with pytest.raises(ArgumentError, match="method"):
        stx.encode_style(wave, method="gatys")  # type: ignore[arg-type]


def test_style_validates_cov() -> None:
    with pytest.raises(ShapeError, match="Style.cov"):
        Style(torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1), torch.zeros(1, 4, 3))
    s = Style(torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1), torch.eye(4)[None])
    assert s.to("cpu").cov is not None


def test_bad_method(no_build: list) -> None:
    for bad in ("AdaIN", "", None, 1):
        with pytest.raises(ArgumentError, match="method"):
            transfer(torch.rand(3, 32, 32), torch.rand(3, 32, 32), method=bad, device="cpu")  # type: ignore[arg-type]
    assert no_build == []


# ----------------------------------------------------------------------------- Gatys


def test_gram() -> None:
    f = torch.randn(2, 3, 4, 5)
    g = gram(f, scale=2.0)
    torch.testing.assert_close(g, torch.einsum("bchw,bdhw->bcd", f, f) / (3 * 20) / 4)


def test_gatys_decreases_the_loss_and_calls_back(tiny_model: AdaINModel, cat, wave) -> None:
    seen: list[tuple[int, tuple[int, ...]]] = []
    res = gatys(tiny_model.encoder, cat, [wave], steps=5, progress=False, callback=lambda i, x: seen.append((i, tuple(x.shape))))  # fmt: skip
    assert len(res.losses) == 5 and res.losses[-1] < res.losses[0]
    assert seen == [(i, (1, 3, 64, 96)) for i in range(1, 6)]
    assert res.image.shape == cat.shape and 0 <= float(res.image.min()) and float(res.image.max()) <= 1
    assert not res.image.requires_grad


@pytest.mark.parametrize("init", INITS)
def test_gatys_inits_through_transfer(stx: StyleTransfer, init: str) -> None:
    c, s = example("chelsea_cat.jpg", 32), example("renoir_the_wave_1879_aic81557.jpg", 32)
    images: list[torch.Tensor] = []
    out = stx(c, s, method="gatys", steps=2, init=init, progress=False, callback=lambda i, x: images.append(x))
    assert out.shape == c.shape and len(images) == 2
    if init == "content":
        assert float((images[0] - c).abs().mean()) < 0.05  # one small step away from the content


def test_gatys_mix_batch_and_colour(stx: StyleTransfer) -> None:
    c, s = example("chelsea_cat.jpg", 32), example("renoir_the_wave_1879_aic81557.jpg", 32)
    g = example("gauguin_why_are_you_angry_1896_aic19339.jpg", 32)
    outs = stx([c, c.flip(-1)], [s, g], method="gatys", steps=1, progress=False)  # one style each
    assert [o.shape for o in outs] == [c.shape, c.shape]
    out = stx(c, [s, g], style_weights=[0.3, 0.7], method="gatys", steps=1, progress=False, preserve_color="histogram")
    assert out.shape == c.shape


def test_gatys_progress_bar(stx: StyleTransfer, capsys: pytest.CaptureFixture[str]) -> None:
    c = example("chelsea_cat.jpg", 32)
    stx(c, c, method="gatys", steps=1, progress=True)
    assert "gatys" in capsys.readouterr().err
    stx(c, c, method="gatys", steps=1, progress=False)
    assert capsys.readouterr().err == ""


def test_gatys_arguments(no_build: list, stx: StyleTransfer, cat, wave) -> None:
    c = torch.rand(3, 32, 32)
    for bad in ("random", "", None, 1):
        with pytest.raises(ArgumentError, match="init"):
            transfer(c, c, method="gatys", init=bad, device="cpu")  # type: ignore[arg-type]
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ArgumentError, match="steps"):
            transfer(c, c, method="gatys", steps=bad, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="callback"):
        transfer(c, c, method="gatys", callback=3, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="masks.*gatys"):
        transfer(c, [c, c], method="gatys", masks=[np.ones((4, 4))] * 2, device="cpu")
    assert no_build == []
    with pytest.raises(ArgumentError, match="gatys.*style"):
        stx(cat, stx.encode_style(wave), method="gatys")
