"""Controls of stylekit.transfer (issue #4): several styles, colour preservation, region masks,
max_size, tiling and batches, on the example pictures scaled down.

A seeded untrained decoder is enough for the plumbing and for everything checked at relu4_1
(the targets); the tests that judge the decoded look need the shipped decoder (``needs_decoder``).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import stylekit
from stylekit import AdaINModel, ArgumentError, ImageError, ShapeError, StyleTransfer, VGGEncoder, api, transfer
from stylekit.color import keep_luminance, match_color, rgb_to_yiq
from stylekit.masks import blend_regions, read_mask, region_weights, resize_masks
from stylekit.ops import adain, mean_std
from stylekit.pipeline import fit_size
from stylekit.style import check_style_weights
from stylekit.targets import Moments, Target
from stylekit.tiling import resolve_tile, tile_grid
from stylekit.weights import DECODER

needs_decoder = pytest.mark.skipif(not DECODER.exists(), reason="the shipped decoder weights are not there yet")
EXAMPLES = Path(stylekit.__file__).parent / "examples"


def example(name: str, short: int) -> torch.Tensor:
    """An example picture as a (1, 3, H, W) tensor with short side ``short``."""
    img = Image.open(EXAMPLES / name).convert("RGB")
    s = short / min(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    return torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)[None].contiguous()


CAT, WAVE, GAUGUIN, ASTRO = (
    "chelsea_cat.jpg", "renoir_the_wave_1879_aic81557.jpg", "gauguin_why_are_you_angry_1896_aic19339.jpg",
    "astronaut_nasa.jpg",
)  # fmt: skip


@pytest.fixture(scope="module")
def enc(tiny_model: AdaINModel) -> VGGEncoder:
    return tiny_model.encoder


@pytest.fixture(scope="module")
def cat() -> torch.Tensor:
    return example(CAT, 64)  # 64 x 96


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    return example(WAVE, 64)


@pytest.fixture(scope="module")
def gauguin() -> torch.Tensor:
    return example(GAUGUIN, 64)


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """An empty model cache that records builds: argument errors must come before any build."""
    builds: list[torch.device] = []
    monkeypatch.setattr(api, "_MODELS", {})
    monkeypatch.setattr(api, "_build_model", lambda device: builds.append(device))
    return builds


def feats(enc: VGGEncoder, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return enc.encode(x)


# ----------------------------------------------------------------------------- several styles


@pytest.mark.parametrize(
    "weights, match",
    [([0.5], "2 styles"), ([0.2, 0.3, 0.5], "3 entries"), ([-0.1, 1.1], ">= 0"), ([float("nan"), 1], ">= 0"),
     ([math.inf, 1], ">= 0"), ([0, 0], "all be 0"), (["a", 1], "real"), ([True, 1], "real"), ("ab", "list"), (0.5, "list")],
)  # fmt: skip
def test_bad_style_weights(no_build: list, cat: torch.Tensor, wave: torch.Tensor, weights, match: str) -> None:
    with pytest.raises(ArgumentError, match=f"style_weights.*{match}|{match}.*style_weights|style_weights"):
        transfer(cat, [wave, wave], style_weights=weights, device="cpu")
    assert no_build == []
    with pytest.raises(ArgumentError, match="style_weights"):
        check_style_weights(weights, 2)


def test_style_weights_are_normalised() -> None:
    assert check_style_weights([2, 3, 5], 3).tolist() == pytest.approx([0.2, 0.3, 0.5])
    assert check_style_weights(np.array([1.0, 1.0]), 2).tolist() == [0.5, 0.5]
    assert check_style_weights(None, 4).tolist() == [0.25] * 4


def test_mix_interpolates_the_adain_targets(enc: VGGEncoder, cat, wave, gauguin) -> None:
    f_c = feats(enc, cat)
    s1, s2 = mean_std(feats(enc, wave)), mean_std(feats(enc, gauguin))
    t = Target("adain", [(*s1, None), (*s2, None)], weights=torch.tensor([0.2, 0.8]))(f_c)
    expected = 0.2 * adain(f_c, s1) + 0.8 * adain(f_c, s2)
    torch.testing.assert_close(t, expected, rtol=1e-4, atol=1e-3)
    # ... which for AdaIN is the same as interpolating the statistics
    mixed = (0.2 * s1[0] + 0.8 * s2[0], 0.2 * s1[1] + 0.8 * s2[1])
    torch.testing.assert_close(t, adain(f_c, mixed), rtol=1e-4, atol=1e-3)


def test_mix_end_to_end(stx: StyleTransfer, cat, wave, gauguin) -> None:
    one = stx(cat, wave)
    torch.testing.assert_close(stx(cat, [wave, gauguin], style_weights=[1, 0]), one, atol=1e-5, rtol=0)
    a = stx(cat, [wave, gauguin, wave], style_weights=[0.2, 0.3, 0.5])
    b = stx(cat, [wave, gauguin, wave], style_weights=[2, 3, 5])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    styles = [stx.encode_style(wave), stx.encode_style(gauguin)]
    torch.testing.assert_close(stx(cat, styles, style_weights=[0.4, 0.6]),
                               stx(cat, [wave, gauguin], style_weights=[0.4, 0.6]), atol=1e-5, rtol=0)  # fmt: skip
    assert not torch.allclose(a, one, atol=1e-3)


# ----------------------------------------------------------------------------- colour


def test_bad_preserve_color(no_build: list, cat, wave, stx: StyleTransfer) -> None:
    for bad in ("lum", "YIQ", 1, True):
        with pytest.raises(ArgumentError, match="preserve_color"):
            transfer(cat, wave, preserve_color=bad, device="cpu")
    assert no_build == []
    with pytest.raises(ArgumentError, match="preserve_color='histogram'.*style"):
        stx(cat, stx.encode_style(wave), preserve_color="histogram")


def _unclipped(x: torch.Tensor) -> torch.Tensor:
    return ((x > 1e-3) & (x < 1 - 1e-3)).all(1)


@pytest.fixture(scope="module")
def shipped() -> StyleTransfer:
    """The shipped decoder: its outputs are real pictures, mostly inside [0, 1]."""
    return StyleTransfer("cpu", "fp32", model=AdaINModel.from_pretrained())


def test_luminance_keeps_the_content_chroma(shipped: StyleTransfer, cat, wave) -> None:
    stx = shipped
    plain = stx(cat, wave)
    out = stx(cat, wave, preserve_color="luminance")
    ok = _unclipped(out)
    assert ok.float().mean() > 0.5
    yiq_out, yiq_c, yiq_plain = rgb_to_yiq(out), rgb_to_yiq(cat), rgb_to_yiq(plain)
    for ch in (1, 2):  # I and Q: the content's
        assert (yiq_out[:, ch][ok] - yiq_c[:, ch][ok]).abs().max() < 1e-5
    assert (yiq_out[:, 0][ok] - yiq_plain[:, 0][ok]).abs().max() < 1e-5  # Y: the stylised one
    # 8-bit output: equal up to rounding
    arr = stx((cat[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), wave, preserve_color="luminance")
    o8 = torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)[None]
    c8 = torch.from_numpy(np.round(cat[0].permute(1, 2, 0).numpy() * 255).astype(np.float32) / 255).permute(2, 0, 1)[None]
    ok8 = _unclipped(o8) & ok
    assert (rgb_to_yiq(o8)[:, 1:] - rgb_to_yiq(c8)[:, 1:]).abs().permute(1, 0, 2, 3)[:, ok8].max() < 2.5 / 255


def test_keep_luminance_function() -> None:
    g = torch.Generator().manual_seed(0)
    out, content = torch.rand(2, 3, 8, 8, generator=g) * 0.5 + 0.25, torch.rand(2, 3, 8, 8, generator=g) * 0.5 + 0.25
    res = keep_luminance(out, content)
    torch.testing.assert_close(rgb_to_yiq(res)[:, 1:], rgb_to_yiq(content)[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(rgb_to_yiq(res)[:, :1], rgb_to_yiq(out)[:, :1], atol=1e-5, rtol=0)
    with pytest.raises(ShapeError):
        keep_luminance(out, content[..., :4])


def _mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = x.double().flatten(2)[0]
    return f.mean(1), torch.cov(f, correction=0)


def test_histogram_matches_mean_and_covariance(cat, wave) -> None:
    mc, cc = _mean_cov(cat)
    exact = match_color(wave, cat, eps=0.0, clamp=False)
    m, c = _mean_cov(exact)
    torch.testing.assert_close(m, mc, atol=1e-5, rtol=0)
    torch.testing.assert_close(c, cc, atol=1e-6, rtol=1e-5)
    _, c = _mean_cov(match_color(wave, cat, clamp=False))  # the default eps = 1e-5 regularises a little
    torch.testing.assert_close(c, cc, atol=1e-4, rtol=1e-2)
    clamped = match_color(wave, cat)  # what transfer() uses: clipping moves the statistics a little
    assert 0 <= float(clamped.min()) and float(clamped.max()) <= 1
    m, c = _mean_cov(clamped)
    assert (m - mc).abs().max() < 0.02 and (c - cc).abs().max() < 0.1 * cc.abs().max()
    ms, cs = _mean_cov(wave)
    assert (ms - mc).abs().max() > 0.05  # the wave really had other colours


def test_histogram_end_to_end(stx: StyleTransfer, cat, wave) -> None:
    out = stx(cat, wave, preserve_color="histogram")
    torch.testing.assert_close(out, stx(cat, match_color(wave, cat)), atol=1e-5, rtol=0)
    assert not torch.allclose(out, stx(cat, wave), atol=1e-3)


# ----------------------------------------------------------------------------- masks


def test_read_mask_kinds(tmp_path: Path) -> None:
    half = np.zeros((6, 8), np.uint8)
    half[:, 4:] = 255
    p = tmp_path / "m.png"
    Image.fromarray(half).save(p)
    kinds = [half, half.astype(np.float32) / 255, half.astype(np.float64), half > 0, Image.fromarray(half),
             Image.fromarray(half).convert("RGB"), p, str(p), p.read_bytes(), io.BytesIO(p.read_bytes()),
             torch.from_numpy(half)[None], torch.from_numpy(half > 0)]  # fmt: skip
    for m in kinds:
        t = read_mask(m)
        assert t.shape == (1, 1, 6, 8) and t.dtype == torch.float32
        assert float(t[..., :4].max()) == 0 and float(t[..., 4:].min()) == 1
    for bad, err in [(np.zeros((4, 4, 3)), ShapeError), (-np.ones((4, 4)), ShapeError), (np.full((4, 4), 300.0), ShapeError),
                     (tmp_path / "none.png", ImageError), (torch.zeros(2, 4, 4), ShapeError), (3, ImageError)]:  # fmt: skip
        with pytest.raises(err, match="mask"):
            read_mask(bad)  # type: ignore[arg-type]


def test_masks_argument_checked(no_build: list, cat, wave) -> None:
    with pytest.raises(ArgumentError, match="masks.*2 styles"):
        transfer(cat, [wave, wave], masks=[np.ones((4, 4))], device="cpu")
    with pytest.raises(ArgumentError, match="masks"):
        transfer(cat, [wave, wave], masks=np.ones((4, 4)), device="cpu")
    with pytest.raises(ArgumentError, match="masks must be a list with one mask per style, got bytes"):
        transfer(cat, [wave, wave], masks=b"\x89PNG", device="cpu")  # type: ignore[arg-type]  # one mask, not a list of ints
    with pytest.raises(ArgumentError, match="style_weights and masks do not go together"):  # masks would drop the weights
        transfer(cat, [wave, wave], style_weights=[1, 3], masks=[np.ones((4, 4))] * 2, device="cpu")
    assert no_build == []


def test_region_weights_and_resize() -> None:
    m = torch.tensor([[1.0, 1.0, 0.0, 0.2]]).view(1, 1, 1, 4).expand(2, 1, 1, 4).clone()
    m[1] = torch.tensor([0.0, 1.0, 0.0, 0.3]).view(1, 1, 4)
    w = region_weights(m)
    torch.testing.assert_close(w[:, 0, 0].T, torch.tensor([[1, 0], [0.5, 0.5], [0, 0], [0.2, 0.3]]))
    big = torch.zeros(1, 1, 80, 80)
    big[..., :40] = 1
    small = resize_masks([big], (8, 10))
    assert small.shape == (1, 1, 8, 10) and float(small[..., :5].min()) == 1 and float(small[..., 5:].max()) == 0


def _region_stats(f: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = m / m.sum()
    mean = (f * w).sum((2, 3), keepdim=True)
    return mean, (((f - mean) ** 2 * w).sum((2, 3), keepdim=True) + 1e-5).sqrt()


def test_each_region_gets_its_own_statistics(enc: VGGEncoder, cat, wave, gauguin) -> None:
    f_c = feats(enc, cat)  # 8 x 12
    s1, s2 = mean_std(feats(enc, wave)), mean_std(feats(enc, gauguin))
    m = torch.zeros(2, 1, 8, 12)
    m[0, ..., :5], m[1, ..., 5:10] = 1, 1  # columns 10, 11: no mask
    t = Target("adain", [(*s1, None), (*s2, None)], masks=m)(f_c)
    for k, s in enumerate((s1, s2)):
        mean, std = _region_stats(t, m[k : k + 1])
        live = _region_stats(f_c, m[k : k + 1])[1] > 1  # a channel dead in the region stays flat
        assert live.float().mean() > 0.9
        torch.testing.assert_close(mean[live], s[0][live], rtol=1e-3, atol=1e-2)  # AdaIN §7.2: region stats -> style's
        torch.testing.assert_close(std[live], s[1][live], rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(t[..., 10:], f_c[..., 10:])  # uncovered: the content features
    # the same as stylekit.masks.blend_regions (the module's formula) of each style in its region alone
    alone = [Target("adain", [(*s, None)], masks=m[k : k + 1])(f_c) for k, s in enumerate((s1, s2))]
    torch.testing.assert_close(t, blend_regions(f_c, alone, region_weights(m)), rtol=1e-5, atol=1e-5)


def test_masks_end_to_end(stx: StyleTransfer, cat, wave, gauguin, tmp_path: Path) -> None:
    left = np.zeros((37, 53), np.uint8)  # any size: resized to the relu4_1 map
    left[:, :26] = 255
    out = stx(cat, [wave, gauguin], masks=[left, 255 - left])
    assert out.shape == cat.shape
    everywhere = stx(cat, [wave, gauguin], masks=[np.ones((5, 5)), np.zeros((5, 5))])
    torch.testing.assert_close(everywhere, stx(cat, wave), atol=1e-4, rtol=0)  # one full mask = that style
    nowhere = stx(cat, [wave, gauguin], masks=[np.zeros((5, 5)), np.zeros((5, 5))])
    torch.testing.assert_close(nowhere, stx(cat, wave, alpha=0.0), atol=1e-4, rtol=0)  # no mask = the content


@needs_decoder
def test_regions_move_toward_their_own_style() -> None:
    stx = StyleTransfer("cpu", "fp32")
    enc = stx.model.encoder
    cat, wave, gauguin = example(CAT, 96), example(WAVE, 96), example(GAUGUIN, 96)
    m = torch.zeros(2, 1, 96, 144)
    m[0, ..., :64], m[1, ..., 80:] = 1, 1
    out = stx(cat, [wave, gauguin], masks=[m[0, 0], m[1, 0]])
    f_out, f_c = feats(enc, out), feats(enc, cat)
    small = torch.nn.functional.avg_pool2d(m, 8)
    core = [(small[k : k + 1] > 0.99).float() for k in range(2)]
    styles = [mean_std(feats(enc, wave)), mean_std(feats(enc, gauguin))]

    def dist(a, b) -> float:
        return float((a[0] - b[0]).norm() + (a[1] - b[1]).norm())

    for k in range(2):
        got, before = _region_stats(f_out, core[k]), _region_stats(f_c, core[k])
        assert dist(got, styles[k]) < dist(before, styles[k])  # moved toward its own style...
        assert dist(got, styles[k]) < dist(got, styles[1 - k])  # ... and is closer to it than to the other


# ----------------------------------------------------------------------------- size and max_size


def test_max_size_downscales_only(stx: StyleTransfer, no_build: list) -> None:
    assert fit_size(torch.rand(1, 3, 40, 100), None, 50).shape == (1, 3, 20, 50)
    assert fit_size(torch.rand(1, 3, 40, 100), None, 500).shape == (1, 3, 40, 100)
    assert fit_size(torch.rand(1, 3, 40, 100), 20, 40).shape == (1, 3, 16, 40)
    assert stx(torch.rand(3, 40, 100), torch.rand(3, 32, 32), max_size=50).shape == (3, 20, 50)
    for bad in (0, 8, "64", 32.0, True):
        with pytest.raises(ArgumentError, match="max_size"):
            transfer(torch.rand(3, 40, 100), torch.rand(3, 32, 32), max_size=bad, device="cpu")
    with pytest.raises(ArgumentError, match="max_size"):
        fit_size(torch.rand(1, 3, 16, 100), None, 50)  # the short side would fall under 16 px
    assert no_build == []


# ----------------------------------------------------------------------------- tiling


@settings(max_examples=25, deadline=None)
@given(h=st.integers(24, 400), w=st.integers(24, 400), tile=st.sampled_from([256, 264, 320, 512]))
def test_tiles_cover_once_and_weights_sum_to_one(h: int, w: int, tile: int) -> None:
    h, w, tile = h // 8 * 8, w // 8 * 8, tile // 8 * 8
    h, w = max(h, 24), max(w, 24)
    weight, owned = torch.zeros(h, w), torch.zeros(h, w)
    for t in tile_grid(h, w, tile):
        assert t.ys.stop - t.ys.start <= tile and t.xs.stop - t.xs.start <= tile
        assert t.ys.start % 8 == 0 and t.xs.start % 8 == 0 and t.own_y.start % 8 == 0 and t.own_x.start % 8 == 0
        weight[t.ys, t.xs] += t.wy[:, None] * t.wx[None, :]
        owned[t.own_y, t.own_x] += 1
        assert t.ys.start <= t.own_y.start and t.own_y.stop <= t.ys.stop
    torch.testing.assert_close(weight, torch.ones(h, w))
    assert owned.eq(1).all()


def test_tile_argument(no_build: list) -> None:
    for bad in (100, 0, "big", 256.0, True):
        with pytest.raises(ArgumentError, match="tile"):
            transfer(torch.rand(3, 32, 32), torch.rand(3, 32, 32), tile=bad, device="cpu")
    with pytest.raises(ArgumentError, match="tile.*gatys"):
        transfer(torch.rand(3, 32, 32), torch.rand(3, 32, 32), tile=256, method="gatys", device="cpu")
    assert no_build == []
    assert resolve_tile("auto", 3000, 4000) == 1024 and resolve_tile("auto", 1000, 1000) is None
    assert resolve_tile(512, 400, 500) is None and resolve_tile(512, 400, 600) == 512


def test_moments_over_windows_equal_the_whole(enc: VGGEncoder, cat) -> None:
    f = feats(enc, example(ASTRO, 96))  # 12 x 12
    m = Moments(regions=2, cov=True)
    weights = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    weights[0] = 1
    for ys, xs in [(slice(0, 5), slice(0, 12)), (slice(5, 12), slice(0, 7)), (slice(5, 12), slice(7, 12))]:
        m.add(f[..., ys, xs], weights[..., ys, xs])
    mean, std, cov = m.stats()
    torch.testing.assert_close(mean[0], mean_std(f)[0], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(std[0], mean_std(f)[1], rtol=1e-4, atol=1e-3)
    fw = f.double().flatten(2)[0]
    ref = torch.cov(fw, correction=0)
    assert float((cov[0, 0] - ref).abs().max()) < 1e-5 * float(ref.abs().max())
    torch.testing.assert_close(mean[1], _region_stats(f, weights[1:])[0], rtol=1e-5, atol=1e-3)


def _column_steps(img: torch.Tensor) -> torch.Tensor:
    """Mean |x[..., i + 1] - x[..., i]| for every column step i."""
    return (img[..., 1:] - img[..., :-1]).abs().mean((0, 1, 2))


def _tiled_vs_whole(stx: StyleTransfer, content: torch.Tensor, style, tile: int, **kw) -> tuple[float, float]:
    """Mean |tiled - whole| away from the border, and the seam ratio: the step between columns
    where tiles overlap (ramps, tile edges) in the tiled result over the same step in the
    whole one, on average over those columns (1: no seam; the decoder's own 8-px pattern cancels out)."""
    whole = stx(content, style, **kw)
    tiled = stx(content, style, tile=tile, **kw)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    mad = float((tiled - whole)[inner].abs().mean())
    h, w = content.shape[-2:]
    covered = torch.zeros(w)
    for t in tile_grid(h, w, tile):
        if t.ys.start == 0:
            covered[t.xs] += 1
    seams = (covered[:-1] > 1) | (covered[1:] > 1)
    return mad, float(_column_steps(tiled)[seams].mean() / _column_steps(whole)[seams].mean())


def test_tiled_matches_untiled_small(stx: StyleTransfer, wave) -> None:
    content = example(CAT, 128)[..., :128, :192].repeat(1, 1, 1, 2)[..., :296]  # 128 x 296, tiles of 256: 1 x 2
    mad, seam = _tiled_vs_whole(stx, content, wave, 256)
    assert mad < 0.003, mad  # of the [0, 1] range
    assert seam < 1.05, seam


def test_tiled_progress_bar_counts_both_passes(stx: StyleTransfer, wave, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # tqdm draws every update, not 10 a second
    content = torch.rand(1, 3, 128, 296)  # tiles of 256: 1 x 2, each encoded in both passes
    stx(content, wave, tile=256, progress=True)
    err = capsys.readouterr().err
    assert "tiles (2 x 2 passes)" in err and "4/4" in err and "5/4" not in err, err
    stx(content, wave, tile=256, progress=False)
    stx(content, wave, tile=None, progress=True)  # untiled: one forward pass, no bar
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_tiled_matches_untiled_640x480(stx: StyleTransfer, wave, gauguin) -> None:
    content = example(CAT, 480)[..., :480, :640]
    mad, seam = _tiled_vs_whole(stx, content, wave, 256)
    assert mad < 0.003, mad  # away from the picture's border, in [0, 1] units (measured: 1e-4)
    assert seam < 1.05, seam  # measured: 1.000
    # with masks, WCT and luminance too: still the same picture
    m = torch.zeros(480, 640)
    m[:, :300] = 1
    mad, seam = _tiled_vs_whole(stx, content, [wave, gauguin], 256, masks=[m, 1 - m], method="wct", preserve_color="luminance")  # fmt: skip
    assert mad < 0.003 and seam < 1.05, (mad, seam)  # measured: 1.5e-4, 0.999


@needs_decoder
@pytest.mark.slow
def test_tiled_matches_untiled_shipped_decoder() -> None:
    stx = StyleTransfer("cpu", "fp32")
    content = example(CAT, 480)[..., :480, :640]
    mad, seam = _tiled_vs_whole(stx, content, example(WAVE, 256), 256)
    assert mad < 0.003, mad  # measured with the step-1100 snapshot: 4e-5
    assert seam < 1.05, seam  # measured: 1.0003


# ----------------------------------------------------------------------------- batches


def test_list_of_contents_returns_a_list_of_each_type(stx: StyleTransfer, cat, wave) -> None:
    pil = Image.fromarray((cat[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    arr = np.asarray(pil)
    small = cat[0, :, :48, :80]
    outs = stx([pil, arr, small, cat], wave)
    assert isinstance(outs, list) and len(outs) == 4
    assert isinstance(outs[0], Image.Image) and outs[0].size == (96, 64)
    assert isinstance(outs[1], np.ndarray) and outs[1].shape == (64, 96, 3) and outs[1].dtype == np.uint8
    assert outs[2].shape == (3, 48, 80) and outs[3].shape == (1, 3, 64, 96)
    torch.testing.assert_close(outs[3], stx(cat, wave), atol=1e-4, rtol=0)
    torch.testing.assert_close(outs[2], stx(small, wave), atol=1e-4, rtol=0)


def test_equal_sized_contents_run_as_one_batch(stx: StyleTransfer, cat, wave, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    decoder = stx.model.decoder
    orig = type(decoder).forward
    monkeypatch.setattr(type(decoder), "forward", lambda self, t: calls.append(t.shape[0]) or orig(self, t))
    stx([cat, cat.flip(-1), cat[..., :48, :64]], wave)
    assert sorted(calls) == [1, 2]


def test_one_style_per_content(stx: StyleTransfer, cat, wave, gauguin) -> None:
    c2 = cat.flip(-1)
    outs = stx([cat, c2], [wave, gauguin])
    torch.testing.assert_close(outs[0], stx(cat, wave), atol=1e-4, rtol=0)
    torch.testing.assert_close(outs[1], stx(c2, gauguin), atol=1e-4, rtol=0)
    batch = stx(torch.cat([cat, c2]), [wave, gauguin])  # a (B, 3, H, W) tensor with B styles
    assert batch.shape == (2, 3, 64, 96)
    torch.testing.assert_close(batch[1:], outs[1], atol=1e-4, rtol=0)
    mixed = stx([cat, c2], [wave, gauguin], style_weights=[0.5, 0.5])  # with weights: a mix for each
    torch.testing.assert_close(mixed[0], stx(cat, [wave, gauguin]), atol=1e-4, rtol=0)


def test_batches_with_every_control(stx: StyleTransfer, cat, wave, gauguin) -> None:
    c2 = cat.flip(-1)
    m = np.zeros((64, 96), np.float32)
    m[:, :40] = 1
    kw = dict(masks=[m, 1 - m], preserve_color="histogram", method="wct", alpha=0.7, max_size=80)
    outs = stx([cat, c2], [wave, gauguin], **kw)
    assert [o.shape for o in outs] == [(1, 3, 53, 80)] * 2
    torch.testing.assert_close(outs[1], stx(c2, [wave, gauguin], **kw), atol=1e-4, rtol=0)


def test_empty_lists(stx: StyleTransfer, cat) -> None:
    with pytest.raises(ArgumentError, match="content"):
        stx([], cat)
    with pytest.raises(ArgumentError, match="style"):
        stx(cat, [])
