"""stylekit.padding: same numbers as torch's reflection padding, any memory format and dtype."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stylekit.padding import ReflectPad, reflect_pad, relu_pad


@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 9), w=st.integers(2, 9), c=st.integers(1, 5), channels_last=st.booleans())
def test_matches_torch_reflection_pad(h: int, w: int, c: int, channels_last: bool) -> None:
    x = torch.randn(2, c, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(reflect_pad(x), torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), rtol=0, atol=0)


def test_gradient_matches_torch() -> None:
    x = torch.randn(1, 3, 5, 6, requires_grad=True)
    g = torch.randn(1, 3, 7, 8)
    (reflect_pad(x) * g).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect") * g).sum().backward()
    torch.testing.assert_close(ours, x.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_keeps_channels_last_and_dtype(dtype: torch.dtype) -> None:
    x = torch.randn(1, 8, 4, 4, dtype=dtype).contiguous(memory_format=torch.channels_last)
    y = ReflectPad()(x)
    assert y.dtype == dtype and y.shape == (1, 8, 6, 6)
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_stays_bf16_under_cpu_autocast(requires_grad: bool) -> None:
    """torch's reflection padding autocasts to float32 on the CPU: a float32 copy of every map
    that the next convolution casts back (35 % of a 512 px transfer). Ours keeps the dtype."""
    x = torch.randn(2, 16, 9, 7).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(requires_grad)
    conv = torch.nn.Conv2d(16, 4, 3).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = reflect_pad(x)
        assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
        out = conv(y)
    torch.testing.assert_close(y, torch.nn.functional.pad(x.float(), (1, 1, 1, 1), mode="reflect").to(torch.bfloat16), rtol=0, atol=0)
    if requires_grad:
        out.float().square().sum().backward()
        assert x.grad is not None and x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()


def test_one_pixel_side_is_repeated() -> None:
    x = torch.randn(1, 2, 1, 4)
    y = reflect_pad(x)
    assert y.shape == (1, 2, 3, 6)
    torch.testing.assert_close(y[:, :, 0], y[:, :, 1])
    torch.testing.assert_close(y[:, :, 2], y[:, :, 1])


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 4), b=st.integers(1, 2),
    channels_last=st.booleans(), dtype=st.sampled_from([torch.float64, torch.bfloat16]),
)  # fmt: skip
def test_hand_written_gradient_matches_autograd_of_the_forward(h, w, c, b, channels_last, dtype) -> None:
    """The custom backward (``_unpad``) equals autograd's gradient of the slicing forward, for
    every size including one-pixel sides (where the border repeats the only row or column)."""
    from stylekit.padding import _pad

    x = torch.randn(b, c, h, w, dtype=torch.float64)
    g = torch.randn(b, c, h + 2, w + 2, dtype=torch.float64)
    if channels_last:
        x, g = x.contiguous(memory_format=torch.channels_last), g.contiguous(memory_format=torch.channels_last)
    x, g = x.to(dtype).requires_grad_(), g.to(dtype)
    (ours,) = torch.autograd.grad(reflect_pad(x), x, g)
    x2 = x.detach().requires_grad_()
    i, j = int(h > 1), int(w > 1)  # the reference: slices and cat, differentiated by autograd
    ref_pad = torch.cat([x2[..., i : i + 1, :], x2, x2[..., h - 1 - i : h - i, :]], dim=-2)
    ref_pad = torch.cat([ref_pad[..., j : j + 1], ref_pad, ref_pad[..., w - 1 - j : w - j]], dim=-1)
    torch.testing.assert_close(_pad(x.detach()), ref_pad.detach(), rtol=0, atol=0)
    (ref,) = torch.autograd.grad(ref_pad, x2, g)
    # A border pixel sums up to four gradients, maybe in another order: in bf16 each addition rounds
    # by up to 2^-9 of the partial sum, so allow a few of those (a wrong fold is off by a whole |g|).
    atol = 1e-12 if dtype == torch.float64 else 4 * 2**-8 * float(g.abs().max())
    torch.testing.assert_close(ours, ref, rtol=0 if dtype == torch.float64 else 1e-2, atol=atol)
    assert ours.dtype == dtype
    if channels_last and h > 1 and w > 1 and c > 1:
        assert ours.is_contiguous(memory_format=torch.channels_last)


def test_gradcheck() -> None:
    for shape in [(1, 2, 3, 4), (2, 1, 1, 5), (1, 3, 4, 1), (1, 1, 1, 1)]:
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(reflect_pad, (x,))


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 4), channels_last=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float64]))  # fmt: skip
def test_relu_pad_is_reflect_pad_of_relu(h: int, w: int, c: int, channels_last: bool, dtype: torch.dtype) -> None:
    x = torch.randn(2, c, h, w).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = relu_pad(xa), reflect_pad(torch.relu(xb))
    assert torch.equal(ya, yb) and ya.stride() == yb.stride()
    g = torch.randn(ya.shape).to(dtype)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    assert torch.equal(xa.grad, xb.grad)


def test_relu_pad_gradcheck() -> None:
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(relu_pad, (x,))
