"""stylekit.ops (mean_std, adain, AdaIN) as properties over shapes and dtypes, and the alpha blend."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stylekit import AdaIN, AdaINModel, ArgumentError, ShapeError, adain, mean_std

FAST = settings(max_examples=40, deadline=None)

# Unit round-off of each dtype: the output is computed in fp32 and rounded once to the input
# dtype, so its statistics are off by at most about this much times the largest |value|.
ROUNDOFF = {torch.float32: 2.0**-23, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
# Tolerance, in units of the largest |output| of the channel (a few round-offs of slack).
TOL = {dtype: 8 * u for dtype, u in ROUNDOFF.items()}
DTYPES = st.sampled_from(list(ROUNDOFF))


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@st.composite
def content_style(draw, *, style_batch_one: bool = False):
    """A content map with non-degenerate per-channel std and a style map of the same C."""
    b, c = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    hc, wc = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    hs, ws = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    dtype = draw(DTYPES)
    seed = draw(st.integers(0, 2**31 - 1))
    c_scale, c_shift = draw(st.floats(0.5, 4.0)), draw(st.floats(-3.0, 3.0))
    s_scale, s_shift = draw(st.floats(0.1, 10.0)), draw(st.floats(-10.0, 10.0))
    x = _randn(seed, b, c, hc, wc)
    x = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True, correction=0)  # std exactly 1
    content = (x * c_scale + c_shift).to(dtype)
    style = (_randn(seed + 1, 1 if style_batch_one else b, c, hs, ws) * s_scale + s_shift).to(dtype)
    return content, style


def assert_has_stats_of(out: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> None:
    """``out`` has, per sample and channel, the given mean and std (within the dtype's round-off)."""
    # eps=0: the output's own spread. AdaIN gives it exactly the style's sqrt(var + eps).
    m, s = mean_std(out, eps=0.0)
    scale = out.float().abs().amax(dim=(2, 3), keepdim=True)
    tol = TOL[out.dtype] * scale + 1e-4 * style_std  # 1e-4: content var / (var + eps) with var >= 0.25
    assert (m - style_mean).abs().le(tol).all(), (m - style_mean).abs().max()
    assert (s - style_std).abs().le(tol).all(), (s - style_std).abs().max()


@FAST
@given(content_style())
def test_output_has_style_statistics(pair) -> None:
    content, style = pair
    out = adain(content, style)
    assert out.shape == content.shape
    assert out.dtype == content.dtype
    assert torch.isfinite(out).all()
    s_mean, s_std = mean_std(style)
    assert_has_stats_of(out, s_mean, s_std)


@FAST
@given(content_style())
def test_module_equals_function(pair) -> None:
    content, style = pair
    assert torch.equal(AdaIN()(content, style), adain(content, style))
    assert torch.equal(AdaIN(eps=1e-3)(content, style), adain(content, style, eps=1e-3))


@FAST
@given(content_style())
def test_mean_std_is_float32_per_channel(pair) -> None:
    content, _ = pair
    m, s = mean_std(content)
    b, c = content.shape[:2]
    assert m.shape == s.shape == (b, c, 1, 1)
    assert m.dtype == s.dtype == torch.float32
    ref = content.double()
    var = ref.var(dim=(2, 3), keepdim=True, correction=0)
    torch.testing.assert_close(m.double(), ref.mean(dim=(2, 3), keepdim=True), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.double(), (var + 1e-5).sqrt(), rtol=1e-5, atol=1e-6)


@FAST
@given(content_style())
def test_batch_independence(pair) -> None:
    content, style = pair
    whole = adain(content, style)
    parts = torch.cat([adain(content[i : i + 1], style[i : i + 1]) for i in range(content.shape[0])])
    torch.testing.assert_close(whole, parts)  # default per-dtype tolerances of torch.testing


@FAST
@given(content_style())
def test_precomputed_statistics_give_the_same_result(pair) -> None:
    content, style = pair
    assert torch.equal(adain(content, mean_std(style)), adain(content, style))
    eps = 1e-3
    assert torch.equal(adain(content, mean_std(style, eps), eps), adain(content, style, eps))


@FAST
@given(content_style(style_batch_one=True))
def test_style_batch_of_one_broadcasts(pair) -> None:
    content, style = pair
    b = content.shape[0]
    out = adain(content, style)
    assert out.shape == content.shape
    torch.testing.assert_close(out, adain(content, style.expand(b, -1, -1, -1)))
    s_mean, s_std = mean_std(style)
    assert_has_stats_of(out, s_mean.expand(b, -1, -1, -1), s_std.expand(b, -1, -1, -1))


@pytest.mark.parametrize("dtype", list(ROUNDOFF), ids=str)
def test_one_by_one_maps_are_finite(dtype: torch.dtype) -> None:
    c, s = _randn(0, 2, 4, 1, 1).to(dtype), _randn(1, 2, 4, 1, 1).to(dtype)
    m, sd = mean_std(c)
    assert torch.isfinite(sd).all() and torch.allclose(sd, torch.full_like(sd, math.sqrt(1e-5)))
    out = adain(c, s)
    assert out.dtype == dtype and torch.isfinite(out).all()
    # a constant map has no pattern to keep: it becomes the style mean
    torch.testing.assert_close(out.float(), s.float())
    # a 1x1 style on a real content map: finite too
    assert torch.isfinite(adain(_randn(2, 2, 4, 5, 5).to(dtype), s)).all()


def test_constant_content_is_finite() -> None:
    out = adain(torch.full((1, 3, 6, 6), 7.0), _randn(0, 1, 3, 4, 4))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("content", "style", "match"),
    [
        ((2, 4, 5, 5), (2, 3, 5, 5), "channels"),
        ((1, 4, 5, 5), (1, 8, 2, 2), "channels"),
        ((3, 4, 5, 5), (2, 4, 5, 5), "batch"),
        ((1, 4, 5, 5), (2, 4, 5, 5), "batch"),
        ((4, 5, 5), (1, 4, 5, 5), r"content_feat.*\(4, 5, 5\)"),
        ((1, 4, 5, 5), (4, 5, 5), r"style_feat.*\(4, 5, 5\)"),
    ],
)
def test_mismatched_shapes_raise(content, style, match) -> None:
    with pytest.raises(ShapeError, match=match):
        adain(torch.randn(*content), torch.randn(*style))
    with pytest.raises(ShapeError, match=match):
        AdaIN()(torch.randn(*content), torch.randn(*style))


def test_mismatched_precomputed_statistics_raise() -> None:
    stats = mean_std(torch.randn(2, 3, 4, 4))
    with pytest.raises(ShapeError, match="channels"):
        adain(torch.randn(2, 4, 4, 4), stats)
    with pytest.raises(ShapeError, match="batch"):
        adain(torch.randn(3, 3, 4, 4), stats)


def test_not_a_tensor_raises() -> None:
    with pytest.raises(ShapeError, match="list"):
        mean_std([[1.0, 2.0]])  # type: ignore[arg-type]


# ------------------------------------------------------------------ the content/style blend


def _feats() -> tuple[torch.Tensor, torch.Tensor]:
    return _randn(0, 2, 8, 3, 4), _randn(1, 2, 8, 3, 4)


@pytest.mark.parametrize("alpha", [0.0, 0])
def test_blend_alpha_zero_is_the_content(alpha) -> None:
    f_c, t = _feats()
    out = AdaINModel._blend(f_c, t, alpha)
    assert torch.equal(out, f_c)


@pytest.mark.parametrize("alpha", [1.0, 1])
def test_blend_alpha_one_is_the_target(alpha) -> None:
    f_c, t = _feats()
    assert torch.equal(AdaINModel._blend(f_c, t, alpha), t)


@pytest.mark.parametrize("alpha", [0.25, torch.tensor(0.25)], ids=["float", "tensor"])
def test_blend_interpolates(alpha) -> None:
    f_c, t = _feats()
    torch.testing.assert_close(AdaINModel._blend(f_c, t, alpha), 0.75 * f_c + 0.25 * t)


@pytest.mark.parametrize("alpha", [-0.01, 1.01, 2, -1, float("nan"), float("inf")])
def test_blend_alpha_out_of_range_raises(alpha) -> None:
    f_c, t = _feats()
    with pytest.raises(ArgumentError, match="alpha"):
        AdaINModel._blend(f_c, t, alpha)


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3), c=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9),
    channels_last=st.booleans(), only=st.sampled_from(["both", "mean", "std"]),
)  # fmt: skip
def test_mean_std_gradient_matches_autograd_of_var_mean(b, c, h, w, channels_last, only) -> None:
    """mean_std's hand-written gradient equals autograd's gradient of the float64 statistics."""
    torch.manual_seed(b * 1000 + c * 100 + h * 10 + w)
    x = torch.relu(torch.randn(b, c, h, w, dtype=torch.float64) * 2 + 0.5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    gm, gs = torch.randn(b, c, 1, 1, dtype=torch.float64), torch.randn(b, c, 1, 1, dtype=torch.float64)

    def objective(m, s):
        return {"both": (m * gm).sum() + (s * gs).sum(), "mean": (m * gm).sum(), "std": (s * gs).sum()}[only]

    x1 = x.clone().requires_grad_()
    (ours,) = torch.autograd.grad(objective(*mean_std(x1)), x1)
    x2 = x.clone().requires_grad_()
    var, mean = torch.var_mean(x2, dim=(2, 3), keepdim=True, correction=0)
    (ref,) = torch.autograd.grad(objective(mean, (var + 1e-5).sqrt()), x2)
    assert ours.dtype == x.dtype and ours.shape == x.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()) + 1e-9)


def test_mean_std_gradient_in_bf16_keeps_dtype_and_layout() -> None:
    x = torch.rand(2, 8, 6, 6).bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_()
    m, s = mean_std(x)
    (m.sum() + s.sum()).backward()
    assert x.grad.dtype == torch.bfloat16 and x.grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(x.grad).all()
