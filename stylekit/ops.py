"""Feature statistics and adaptive instance normalisation (Huang & Belongie, 2017).

Every op is a function and a Module. Statistics are always computed in float32, so
the ops are safe under bf16/fp16 autocast; the result comes back in the input's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .device import is_channels_last, memory_format_of
from .errors import ShapeError

__all__ = ["mean_std", "adain", "AdaIN"]


def _check_feat(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"{name} must be a (B, C, H, W) tensor, got {shape}")


def mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and standard deviation of a feature map, in float32.

    Uses the biased variance, so a 1x1 map gives std = sqrt(eps) rather than NaN.

    Args:
        feat: features of shape (B, C, H, W).
        eps: added to the variance before the square root.

    Returns:
        ``(mean, std)``, each of shape (B, C, 1, 1) and dtype float32.

    Example:
        >>> m, s = mean_std(torch.ones(2, 3, 4, 4))
        >>> m.shape, float(m.mean())
        (torch.Size([2, 3, 1, 1]), 1.0)
    """
    _check_feat("feat", feat)
    if feat.requires_grad and torch.is_grad_enabled():
        return _MeanStd.apply(feat, eps)
    return _mean_std(feat, eps)


def _mean_std(feat: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Two passes in float32 over a view that keeps the pixels of a channel apart in memory
    order: 5-6x faster than ``torch.var_mean(feat.float(), dim=(2, 3))`` on channels-last maps
    (measured on the project's CPU), with the same precision (about 2e-7 relative)."""
    b, c, h, w = feat.shape
    if is_channels_last(feat):
        v, dim = feat.permute(0, 2, 3, 1).reshape(b, h * w, c), 1  # (B, HW, C): no copy
    else:
        v, dim = feat.reshape(b, c, h * w), 2
    f = v.float()
    mean = f.mean(dim, keepdim=True)
    d = f.sub_(mean) if f is not v else f - mean  # in place only on our own float32 copy
    var = d.square_().mean(dim, keepdim=True)
    if dim == 1:
        mean, var = mean.transpose(1, 2), var.transpose(1, 2)
    return mean.reshape(b, c, 1, 1), (var.reshape(b, c, 1, 1) + eps).sqrt()


class _MeanStd(torch.autograd.Function):
    """:func:`mean_std` with a one-pass gradient, for training.

    With n = H·W, d mean/dx = 1/n and d std/dx = (x - mean) / (n·std), so the gradient is
    ``(x - mean)·a + g_mean / n`` per channel, with a = g_std / (n·std): a subtraction and a fused
    multiply-add over the map in float32, then a cast to the map's dtype, where autograd's own
    gradient of ``var_mean`` on a float32 copy takes several more full passes (5x slower on a
    bf16 relu1_1 map of a training batch).
    """

    @staticmethod
    def forward(ctx, feat: Tensor, eps: float) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        mean, std = _mean_std(feat, eps)
        ctx.save_for_backward(feat, mean, std)
        return mean, std

    @staticmethod
    def backward(ctx, g_mean: Tensor | None, g_std: Tensor | None):  # type: ignore[override]
        feat, mean, std = ctx.saved_tensors
        n = feat.shape[-2] * feat.shape[-1]
        g_mean = torch.zeros_like(mean) if g_mean is None else g_mean.float()
        a = torch.zeros_like(std) if g_std is None else g_std.float() / (n * std)
        # (x - mean) in float32, as the forward computed it (float64 maps too): exact zeros where
        # x equals the mean, so a flat channel gets no std gradient from rounding
        d = (feat.float() if feat.dtype == torch.float64 else feat) - mean
        grad = torch.addcmul(g_mean / n, d, a, out=d)
        fmt = memory_format_of(feat)
        return grad.to(feat.dtype, memory_format=fmt), None


def adain(
    content_feat: Tensor,
    style_feat: Tensor | tuple[Tensor, Tensor],
    eps: float = 1e-5,
    *,
    content_stats: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Give ``content_feat`` the channel-wise mean and std of ``style_feat``.

    Args:
        content_feat: (B, C, H, W) content features.
        style_feat: (B or 1, C, h, w) style features, or their precomputed
            ``(mean, std)`` as returned by :func:`mean_std`.
        eps: variance epsilon.
        content_stats: the content's ``(mean, std)`` to normalise with, each (B, C, 1, 1), instead
            of the statistics of ``content_feat`` itself: the statistics of a whole picture when
            ``content_feat`` is one tile of it, or of one masked region.

    Returns:
        A tensor shaped and typed like ``content_feat``.

    Example:
        >>> c, s = torch.randn(1, 8, 5, 5), 3 + 2 * torch.randn(1, 8, 7, 7)
        >>> m, sd = mean_std(adain(c, s))
        >>> torch.allclose(m, mean_std(s)[0], atol=1e-4)
        True
    """
    _check_feat("content_feat", content_feat)
    if isinstance(style_feat, tuple):
        s_mean, s_std = style_feat
    else:
        _check_feat("style_feat", style_feat)
        s_mean, s_std = mean_std(style_feat, eps)
    if s_mean.shape[1] != content_feat.shape[1]:
        raise ShapeError(
            f"content has {content_feat.shape[1]} channels but style has {s_mean.shape[1]}"
        )
    if s_mean.shape[0] not in (1, content_feat.shape[0]):
        raise ShapeError(
            f"style batch {s_mean.shape[0]} must be 1 or match content batch {content_feat.shape[0]}"
        )
    if content_stats is None:
        c_mean, c_std = mean_std(content_feat, eps)
    else:
        c_mean, c_std = content_stats
        if c_mean.shape[1] != content_feat.shape[1] or c_std.shape != c_mean.shape:
            raise ShapeError(f"content_stats must be two (B, {content_feat.shape[1]}, 1, 1) tensors")
    scale = s_std / c_std
    shift = s_mean - c_mean * scale
    return (content_feat.float() * scale + shift).to(content_feat.dtype)


class AdaIN(nn.Module):
    """Module form of :func:`adain`.

    Example:
        >>> AdaIN()(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 6, 6)).shape
        torch.Size([2, 4, 3, 3])
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, content_feat: Tensor, style_feat: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        return adain(content_feat, style_feat, self.eps)
