"""One-pixel reflection padding, shared by the encoder and the decoder.

``torch.nn.ReflectionPad2d`` is slow on channels-last bf16 tensors on CPU (about 2x slower than
building the border with slices and ``cat``, measured on this project's 2-core AVX-512 machine)
and refuses a side of one pixel. :func:`reflect_pad` gives the same numbers, keeps the memory
format, and repeats a one-pixel side instead of failing (there is nothing to mirror).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["reflect_pad", "ReflectPad"]


def reflect_pad(x: Tensor) -> Tensor:
    """Pad the last two dimensions by one pixel on every side, mirroring the edge.

    Example:
        >>> reflect_pad(torch.arange(3.0).view(1, 1, 1, 3))
        tensor([[[[1., 0., 1., 2., 1.],
                  [1., 0., 1., 2., 1.],
                  [1., 0., 1., 2., 1.]]]])
    """
    h, w = x.shape[-2], x.shape[-1]
    i, j = int(h > 1), int(w > 1)
    x = torch.cat([x[..., i : i + 1, :], x, x[..., h - 1 - i : h - i, :]], dim=-2)
    return torch.cat([x[..., j : j + 1], x, x[..., w - 1 - j : w - j]], dim=-1)


class ReflectPad(nn.Module):
    """Module form of :func:`reflect_pad` (a drop-in for ``nn.ReflectionPad2d(1)``)."""

    def forward(self, x: Tensor) -> Tensor:
        return reflect_pad(x)
