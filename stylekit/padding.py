"""One-pixel reflection padding, shared by the encoder and the decoder.

:func:`reflect_pad` gives the numbers of ``torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")``
and keeps the memory format and, under autocast, the dtype (see :func:`_pad`), but repeats a
one-pixel side instead of failing (there is nothing to mirror) and has a faster gradient for
training (see :func:`_unpad`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .device import memory_format_of

__all__ = ["reflect_pad", "relu_pad", "ReflectPad"]


def _pad(x: Tensor, relu: bool = False) -> Tensor:
    """The padded copy (of ``relu(x)`` with ``relu=True``), written by slice copies into one new
    tensor of ``x``'s layout.

    Not ``F.pad(mode="reflect")``: CPU autocast runs reflection padding in float32, so under bf16
    autocast every padded map became a float32 copy that the next convolution cast back (two
    extra passes over it, and twice the bytes: 35 % of a 512 px ``transfer()`` went to padding
    and those casts). Copies keep the dtype and give the same numbers. With ``relu`` the ReLU is
    written straight into the inside, which saves the ReLU's own pass over the map.
    """
    h, w = x.shape[-2], x.shape[-1]
    i, j = int(h > 1), int(w > 1)  # a one-pixel side is repeated (there is nothing to mirror)
    size = (*x.shape[:-2], h + 2, w + 2)
    fmt = memory_format_of(x)
    out = torch.empty(size, dtype=x.dtype, device=x.device, memory_format=fmt)
    if relu and not _capturing():
        torch.clamp_min(x, 0, out=out[..., 1:-1, 1:-1])
    else:  # (tracers and exporters lose a write through out= into a view)
        out[..., 1:-1, 1:-1] = torch.relu(x) if relu else x
    out[..., 0, 1:-1] = out[..., 1 + i, 1:-1]
    out[..., -1, 1:-1] = out[..., h - i, 1:-1]
    out[..., :, 0] = out[..., :, 1 + j]  # the columns last: they carry the corners
    out[..., :, -1] = out[..., :, w - j]
    return out


def _capturing() -> bool:
    """Whether a tracer, exporter or compiler is recording the ops (rather than running them)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _unpad(g: Tensor) -> Tensor:
    """The gradient of :func:`_pad`: the inside of ``g`` plus its border folded back in.

    One copy of the inside and four thin in-place adds: 17 ms for a (8, 64, 256, 256) bf16
    channels-last gradient, against 26 ms for torch's reflection-pad backward, and far less than
    autograd's gradient of slices and ``cat``, which builds a zero tensor of full size per slice
    (that took 1.7 s of a 6.3 s training step at 256 px).
    """
    h, w = g.shape[-2] - 2, g.shape[-1] - 2
    i, j = int(h > 1), int(w > 1)
    fmt = memory_format_of(g)
    out = g[..., 1:-1, 1:-1].clone(memory_format=fmt)
    top, bottom = g[..., 0, 1:-1].clone(), g[..., -1, 1:-1].clone()  # border rows, corners folded in
    top[..., j] += g[..., 0, 0]
    top[..., w - 1 - j] += g[..., 0, -1]
    bottom[..., j] += g[..., -1, 0]
    bottom[..., w - 1 - j] += g[..., -1, -1]
    out[..., :, j] += g[..., 1:-1, 0]
    out[..., :, w - 1 - j] += g[..., 1:-1, -1]
    out[..., i, :] += top
    out[..., h - 1 - i, :] += bottom
    return out


class _ReflectPad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return _pad(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        return _unpad(g)


class _ReluPad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = _pad(x, relu=True)
        ctx.save_for_backward(out)  # the next convolution keeps it anyway
        return out

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return _unpad(g).mul_(out[..., 1:-1, 1:-1] > 0)  # ReLU's gradient: where the output is positive


def relu_pad(x: Tensor) -> Tensor:
    """``reflect_pad(relu(x))`` in one pass over ``x``: the ReLU is written into the padded map.

    Differentiable (the gradient is the padding's, masked where the ReLU was zero). The encoder
    and the decoder use it wherever a ReLU feeds a padded convolution.

    Example:
        >>> relu_pad(torch.tensor([[[[-1.0, 2.0, -3.0]]]]))
        tensor([[[[2., 0., 2., 0., 2.],
                  [2., 0., 2., 0., 2.],
                  [2., 0., 2., 0., 2.]]]])
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _ReluPad.apply(x)
    return _pad(x, relu=True)


def reflect_pad(x: Tensor) -> Tensor:
    """Pad the last two dimensions by one pixel on every side, mirroring the edge.

    Differentiable, with a hand-written gradient (see :func:`_unpad`).

    Example:
        >>> reflect_pad(torch.arange(3.0).view(1, 1, 1, 3))
        tensor([[[[1., 0., 1., 2., 1.],
                  [1., 0., 1., 2., 1.],
                  [1., 0., 1., 2., 1.]]]])
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _ReflectPad.apply(x)
    return _pad(x)


class ReflectPad(nn.Module):
    """Module form of :func:`reflect_pad` (a drop-in for ``nn.ReflectionPad2d(1)``)."""

    def forward(self, x: Tensor) -> Tensor:
        return reflect_pad(x)
