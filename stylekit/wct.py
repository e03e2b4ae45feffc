"""Whitening and colouring transform (Li et al., "Universal Style Transfer via Feature Transforms", 2017).

AdaIN matches each channel's mean and std; WCT matches the whole channel covariance: the content
features are whitened (their covariance becomes the identity) and then coloured with the style's
covariance. stylekit applies it at relu4_1 only and decodes with the same decoder as AdaIN.

The eigendecompositions run in float64. Channels that are dead in an image (ReLU features that are
zero everywhere) make the covariance rank-deficient: eigenvalues below ``rel_eps`` times the
largest one (or below ``eps``) are treated as zero, so those directions are dropped by the
whitening instead of being blown up, and coloured with nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .errors import ShapeError

__all__ = ["mean_cov", "whitening_matrix", "coloring_matrix", "wct_matrix", "apply_affine", "wct", "WCT"]

REL_EPS = 1e-5
"""Eigenvalues below this fraction of the largest one count as zero."""


def _check(name: str, x: Tensor, dims: int) -> None:
    if not isinstance(x, Tensor) or x.dim() != dims:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"{name} must be a {dims}-D tensor, got {shape}")


def mean_cov(feat: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample channel mean (B, C, 1, 1) and covariance (B, C, C) of a feature map, in float64.

    Uses the biased estimate (divides by H * W).

    Example:
        >>> m, c = mean_cov(torch.randn(2, 4, 8, 8))
        >>> m.shape, c.shape, c.dtype
        (torch.Size([2, 4, 1, 1]), torch.Size([2, 4, 4]), torch.float64)
    """
    _check("feat", feat, 4)
    f = feat.detach().double().flatten(2)
    mean = f.mean(2, keepdim=True)
    f = f - mean
    return mean.unsqueeze(-1), f @ f.transpose(1, 2) / f.shape[2]


def _eig(cov: Tensor, eps: float, rel_eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """Eigenvalues (clamped at 0), eigenvectors and a mask of the eigenvalues kept, in float64."""
    _check("cov", cov, 3)
    cov = cov.double()
    cov = (cov + cov.transpose(1, 2)) / 2  # exactly symmetric
    vals, vecs = torch.linalg.eigh(cov)
    top = vals.amax(dim=1, keepdim=True).clamp_min(0.0)
    keep = vals > torch.maximum(top * rel_eps, torch.full_like(top, eps))
    return vals.clamp_min(0.0), vecs, keep


def whitening_matrix(cov: Tensor, eps: float = 1e-5, rel_eps: float = REL_EPS) -> Tensor:
    """``E diag(d^-1/2) E^T`` over the kept eigenvalues (the others give 0): (B, C, C) float64."""
    vals, vecs, keep = _eig(cov, eps, rel_eps)
    d = torch.where(keep, vals.clamp_min(eps).rsqrt(), torch.zeros_like(vals))
    return (vecs * d.unsqueeze(1)) @ vecs.transpose(1, 2)


def coloring_matrix(cov: Tensor, eps: float = 1e-5, rel_eps: float = REL_EPS) -> Tensor:
    """``E diag(d^1/2) E^T`` over the kept eigenvalues: the symmetric square root of ``cov``, float64."""
    vals, vecs, keep = _eig(cov, eps, rel_eps)
    d = torch.where(keep, vals.sqrt(), torch.zeros_like(vals))
    return (vecs * d.unsqueeze(1)) @ vecs.transpose(1, 2)


def wct_matrix(content_cov: Tensor, style_cov: Tensor, eps: float = 1e-5) -> Tensor:
    """The linear part of WCT, ``coloring(style_cov) @ whitening(content_cov)``, as (B, C, C) float32."""
    if content_cov.shape[-1] != style_cov.shape[-1]:
        raise ShapeError(f"content has {content_cov.shape[-1]} channels but style has {style_cov.shape[-1]}")
    return (coloring_matrix(style_cov, eps) @ whitening_matrix(content_cov, eps)).float()


def apply_affine(feat: Tensor, matrix: Tensor, c_mean: Tensor, s_mean: Tensor) -> Tensor:
    """``matrix @ (feat - c_mean) + s_mean`` per pixel, in float32; returned in ``feat``'s dtype."""
    f = feat.float() - c_mean.float()
    out = torch.einsum("bij,bjhw->bihw", matrix.float().expand(f.shape[0], -1, -1), f)
    return (out + s_mean.float()).to(feat.dtype)


def wct(
    content_feat: Tensor,
    style_feat: Tensor | tuple[Tensor, Tensor],
    eps: float = 1e-5,
    *,
    content_stats: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Whiten ``content_feat`` and colour it with the style's covariance (Li et al., 2017).

    Args:
        content_feat: (B, C, H, W) content features.
        style_feat: (B or 1, C, h, w) style features, or their ``(mean, cov)`` from :func:`mean_cov`.
        eps: eigenvalue floor (absolute), see the module docstring.
        content_stats: the content's ``(mean, cov)`` to whiten with instead of those of
            ``content_feat`` (a whole picture's statistics when ``content_feat`` is one tile).

    Returns:
        Features shaped and typed like ``content_feat`` whose mean and covariance are the style's
        (exactly so when the content covariance has full rank).

    Example:
        >>> out = wct(torch.randn(1, 8, 20, 20), torch.randn(1, 8, 16, 16) * 3 + 1)
        >>> out.shape
        torch.Size([1, 8, 20, 20])
    """
    _check("content_feat", content_feat, 4)
    s_mean, s_cov = style_feat if isinstance(style_feat, tuple) else mean_cov(style_feat)
    c_mean, c_cov = content_stats if content_stats is not None else mean_cov(content_feat)
    if s_cov.shape[0] not in (1, content_feat.shape[0]):
        raise ShapeError(f"style batch {s_cov.shape[0]} must be 1 or match content batch {content_feat.shape[0]}")
    return apply_affine(content_feat, wct_matrix(c_cov, s_cov, eps), c_mean, s_mean)


class WCT(nn.Module):
    """Module form of :func:`wct`.

    Example:
        >>> WCT()(torch.randn(2, 4, 6, 6), torch.randn(2, 4, 5, 5)).shape
        torch.Size([2, 4, 6, 6])
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, content_feat: Tensor, style_feat: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        return wct(content_feat, style_feat, self.eps)
