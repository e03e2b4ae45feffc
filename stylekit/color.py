"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman, "Preserving color in neural artistic
style transfer", 2016), for any stylisation method.

* ``"luminance"``: stylise as usual, then keep only the result's luminance: the output's Y
  channel is combined with the content's chroma (I and Q of YIQ), so the output has exactly the
  content's colours (up to clamping to [0, 1] and 8-bit rounding).
* ``"histogram"``: before stylising, give the style image the content's colour statistics: a
  linear map ``x' = A (x - mu_s) + mu_c`` with ``A = Sigma_c^1/2 Sigma_s^-1/2`` (symmetric matrix
  square roots by eigendecomposition, in float64), so the recoloured style has the content's
  RGB mean and covariance; the stylised result then keeps the content's palette.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
from torch import Tensor

from .errors import ArgumentError, ShapeError

__all__ = ["PRESERVE_COLOR", "check_preserve_color", "rgb_to_yiq", "yiq_to_rgb", "keep_luminance", "match_color"]

PreserveColor = Literal["luminance", "histogram"]
PRESERVE_COLOR: tuple[str, ...] = ("luminance", "histogram")

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=torch.float64
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def check_preserve_color(value: Any) -> PreserveColor | None:
    """Validate ``preserve_color``: ``None``, ``"luminance"`` or ``"histogram"``."""
    if value is None or (isinstance(value, str) and value in PRESERVE_COLOR):
        return cast("PreserveColor | None", value)
    raise ArgumentError(f"preserve_color must be None, 'luminance' or 'histogram', got {value!r}")


def _check_rgb(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"{name} must be (B, 3, H, W) RGB images, got {shape}")


def _mix(x: Tensor, matrix: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(x.device, torch.float32), x.float())


def rgb_to_yiq(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] to YIQ (NTSC), float32.

    Example:
        >>> rgb_to_yiq(torch.ones(1, 3, 2, 2))[0, :, 0, 0].tolist()  # white: Y = 1, no chroma
        [1.0, 0.0, 0.0]
    """
    _check_rgb("x", x)
    return _mix(x, _RGB_TO_YIQ)


def yiq_to_rgb(x: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_yiq` (not clamped)."""
    _check_rgb("x", x)
    return _mix(x, _YIQ_TO_RGB)


def keep_luminance(output: Tensor, content: Tensor) -> Tensor:
    """The luminance (Y) of ``output`` with the chroma (I, Q) of ``content``, clamped to [0, 1].

    Args:
        output: stylised images (B, 3, H, W) in [0, 1].
        content: the content images, same shape (or batch 1).

    Example:
        >>> brown = torch.tensor([0.6, 0.5, 0.4]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
        >>> out = keep_luminance(torch.full((1, 3, 4, 4), 0.3), brown)  # a darker brown
        >>> [round(v, 3) for v in out[0, :, 0, 0].tolist()]
        [0.382, 0.281, 0.182]
    """
    _check_rgb("output", output)
    _check_rgb("content", content)
    if content.shape[-2:] != output.shape[-2:]:
        raise ShapeError(f"content {tuple(content.shape)} and output {tuple(output.shape)} sizes differ")
    yiq = rgb_to_yiq(content)
    yiq[:, :1] = rgb_to_yiq(output)[:, :1]
    return yiq_to_rgb(yiq).clamp_(0.0, 1.0).to(output.dtype)


def _sqrtm(cov: Tensor, power: float, eps: float) -> Tensor:
    """``(cov + eps I)^power`` for symmetric PSD (B, 3, 3) float64 matrices."""
    vals, vecs = torch.linalg.eigh((cov + cov.transpose(1, 2)) / 2)
    d = (vals.clamp_min(0.0) + eps) ** power
    return (vecs * d.unsqueeze(1)) @ vecs.transpose(1, 2)


def _rgb_mean_cov(x: Tensor) -> tuple[Tensor, Tensor]:
    f = x.double().flatten(2)
    mean = f.mean(2, keepdim=True)
    f = f - mean
    return mean, f @ f.transpose(1, 2) / f.shape[2]


def match_color(style: Tensor, content: Tensor, *, eps: float = 1e-5, clamp: bool = True) -> Tensor:
    """Recolour ``style`` so its RGB mean and covariance are those of ``content``.

    ``x' = Sigma_c^1/2 (Sigma_s + eps I)^-1/2 (x - mu_s) + mu_c`` per pixel, computed in float64
    (Gatys et al. 2016, "colour histogram matching"). ``eps`` keeps an almost grey style image
    from having its noise amplified.

    Args:
        style: (B or 1, 3, h, w) RGB in [0, 1].
        content: (B or 1, 3, H, W) RGB in [0, 1]; any size.
        eps: added to the style covariance's eigenvalues.
        clamp: clamp the result to [0, 1] (which moves its statistics a little where it clips).

    Returns:
        The recoloured style, (max(B_style, B_content), 3, h, w) float32.

    Example:
        >>> s, c = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 16, 16) * 0.2 + 0.4
        >>> out = match_color(s, c, clamp=False)
        >>> bool((out.mean((2, 3)) - c.mean((2, 3))).abs().max() < 1e-5)
        True
    """
    _check_rgb("style", style)
    _check_rgb("content", content)
    if style.shape[0] != content.shape[0] and 1 not in (style.shape[0], content.shape[0]):
        raise ShapeError(f"style batch {style.shape[0]} and content batch {content.shape[0]} do not match")
    mu_s, cov_s = _rgb_mean_cov(style)
    mu_c, cov_c = _rgb_mean_cov(content.to(style.device))
    a = _sqrtm(cov_c, 0.5, 0.0) @ _sqrtm(cov_s, -0.5, eps)
    f = style.double().flatten(2)
    out = (a @ (f - mu_s) + mu_c).view(-1, 3, *style.shape[-2:]).float()
    return out.clamp_(0.0, 1.0) if clamp else out
