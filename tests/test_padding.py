"""stylekit.padding: same numbers as torch's reflection padding, any memory format and dtype."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stylekit.padding import ReflectPad, reflect_pad


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


def test_one_pixel_side_is_repeated() -> None:
    x = torch.randn(1, 2, 1, 4)
    y = reflect_pad(x)
    assert y.shape == (1, 2, 3, 6)
    torch.testing.assert_close(y[:, :, 0], y[:, :, 1])
    torch.testing.assert_close(y[:, :, 2], y[:, :, 1])
