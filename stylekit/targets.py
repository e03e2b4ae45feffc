"""The decoder input at relu4_1 for every control: AdaIN or WCT per style, mixed by style weights or
blended by region masks, with content statistics of the whole picture (possibly seen tile by tile).

Several styles with weights ``w_k`` (normalised to sum to 1) mix the per-style targets
``t = sum_k w_k t_k`` with ``t_k = T(f_c, s_k)`` (the AdaIN paper's §7.1 interpolation). For
AdaIN this is the same as interpolating the style means and stds linearly, as ``t_k`` is affine
in them; for WCT it is the mix of the WCT outputs. Regions: see :mod:`stylekit.masks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from .errors import ShapeError
from .masks import region_weights
from .ops import adain
from .wct import apply_affine, wct_matrix

__all__ = ["StyleTensors", "Moments", "Target"]

Method = Literal["adain", "wct"]
StyleTensors = tuple[Tensor, Tensor, "Tensor | None"]
"""A style as ``(mean, std, cov)``: (B or 1, C, 1, 1), (B or 1, C, 1, 1), (B or 1, C, C) or None."""


class Moments:
    """Weighted per-channel moments of feature maps, per sample and per region, summed window by window.

    Sums run on features shifted by the first window's mean (float32 per window, float64
    across windows), which keeps ``E[f^2] - E[f]^2`` accurate.

    Args:
        regions: number of weight maps given to :meth:`add`.
        cov: also accumulate the channel covariance (for WCT).

    Example:
        >>> m = Moments()
        >>> f = torch.randn(1, 4, 6, 6)
        >>> m.add(f[..., :3]); m.add(f[..., 3:])
        >>> mean, std, _ = m.stats()
        >>> torch.allclose(mean[0], f.mean((2, 3), keepdim=True), atol=1e-6)
        True
    """

    def __init__(self, regions: int = 1, cov: bool = False) -> None:
        self.regions, self.cov = regions, cov
        self.n = torch.zeros(regions, dtype=torch.float64)
        self.shift: Tensor | None = None  # None until the first add(), which sizes the sums
        self.s1 = self.s2 = torch.zeros(0, dtype=torch.float64)
        self.outer: Tensor | None = None

    def add(self, feat: Tensor, weights: Tensor | None = None) -> None:
        """Add a (B, C, h, w) window; ``weights`` (regions, 1, h, w) in [0, 1], or None for all ones."""
        b, c = feat.shape[:2]
        f = feat.detach().float()
        if self.shift is None:
            self.shift = f.mean((2, 3), keepdim=True)
            self.s1 = torch.zeros(self.regions, b, c, dtype=torch.float64, device=f.device)
            self.s2 = torch.zeros_like(self.s1)
            if self.cov:
                self.outer = torch.zeros(self.regions, b, c, c, dtype=torch.float64, device=f.device)
        f = f - self.shift
        if weights is None:
            weights = torch.ones(self.regions, 1, *f.shape[-2:], device=f.device)
        if weights.shape[0] != self.regions or weights.shape[-2:] != f.shape[-2:]:
            raise ShapeError(f"weights {tuple(weights.shape)} do not fit {self.regions} regions of {tuple(f.shape)}")
        for r in range(self.regions):
            w = weights[r].to(f.device, torch.float32)
            fw = f * w
            self.n[r] += float(w.sum())
            self.s1[r] += fw.sum((2, 3)).double()
            self.s2[r] += (fw * f).sum((2, 3)).double()
            if self.outer is not None:
                self.outer[r] += (fw.flatten(2) @ f.flatten(2).transpose(1, 2)).double()

    def stats(self, eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per region: mean (R, B, C, 1, 1), std (R, B, C, 1, 1) float32 and cov (R, B, C, C) float64 or None.

        A region with no weight gets the statistics of region 0.
        """
        if self.shift is None:
            raise ShapeError("no features were added")
        n = self.n.to(self.s1.device)
        empty = n <= 1e-6
        n = torch.where(empty, n[0], n).clamp_min(1e-12).view(-1, 1, 1)
        fill = empty.view(-1, 1, 1)
        s1, s2 = torch.where(fill, self.s1[:1], self.s1), torch.where(fill, self.s2[:1], self.s2)
        m = s1 / n
        var = (s2 / n - m * m).clamp_min(0.0)
        mean = (m + self.shift[None, ..., 0, 0].double()).float()[..., None, None]
        std = (var + eps).sqrt().float()[..., None, None]
        cov = None
        if self.outer is not None:
            outer = torch.where(fill.unsqueeze(-1), self.outer[:1], self.outer)
            cov = outer / n.unsqueeze(-1) - m.unsqueeze(-1) * m.unsqueeze(-2)
        return mean, std, cov


class Target:
    """Maps content features (B, 512, h, w) to the decoder input (before the ``alpha`` blend).

    Args:
        method: ``"adain"`` or ``"wct"``.
        styles: K styles as ``(mean, std, cov)``; ``cov`` is needed for WCT.
        weights: (K,) mixing weights summing to 1 (not used with ``masks``, so ``transfer`` refuses ``style_weights`` with ``masks``).
        masks: (K, 1, H8, W8) region masks at the relu4_1 size of the whole picture, or None.
        eps: variance epsilon.

    The content statistics are those of everything given to :meth:`observe` (the tiles of a
    big picture, each cropped to the part it alone covers); if nothing was observed, those of
    the features passed to the first call.

    Example:
        >>> s = (torch.zeros(1, 8, 1, 1), torch.ones(1, 8, 1, 1), None)
        >>> t = Target("adain", [s])(torch.randn(1, 8, 4, 4) * 5)
        >>> round(float(t.std()), 1)
        1.0
    """

    def __init__(
        self,
        method: Method,
        styles: Sequence[StyleTensors],
        *,
        weights: Tensor | None = None,
        masks: Tensor | None = None,
        eps: float = 1e-5,
    ) -> None:
        if method == "wct" and any(s[2] is None for s in styles):
            raise ShapeError("method 'wct' needs the covariance of every style")
        if masks is not None and masks.shape[0] != len(styles):
            raise ShapeError(f"{masks.shape[0]} masks for {len(styles)} styles")
        self.method, self.styles, self.eps = method, list(styles), eps
        self.weights = weights if weights is not None else torch.full((len(styles),), 1.0 / len(styles))
        self.masks = masks
        self.moments = Moments(1 + (len(styles) if masks is not None else 0), cov=method == "wct")
        self._prepared: list[tuple[Tensor, Tensor, Tensor, Tensor]] | None = None

    def _region_masks(self, offset: tuple[int, int], size: tuple[int, int]) -> Tensor | None:
        if self.masks is None:
            return None
        (y, x), (h, w) = offset, size
        m = self.masks[..., y : y + h, x : x + w]
        if m.shape[-2:] != (h, w):
            raise ShapeError(f"window {offset}+{size} is outside the masks {tuple(self.masks.shape[-2:])}")
        return m

    def observe(self, feat: Tensor, offset: tuple[int, int] = (0, 0)) -> None:
        """Add a window of the whole picture's content features (at ``offset`` on the relu4_1 grid)."""
        if self._prepared is not None:
            raise ShapeError("observe() after the target was first used")
        with torch.autocast(feat.device.type, enabled=False):
            self._observe(feat, offset)

    def _observe(self, feat: Tensor, offset: tuple[int, int]) -> None:
        masks = self._region_masks(offset, (feat.shape[-2], feat.shape[-1]))
        weights = None
        if masks is not None:
            weights = torch.cat([torch.ones_like(masks[:1]), masks.to(feat.device)])
        self.moments.add(feat, weights)

    def _prepare(self) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per style: (linear part, content mean, style mean, content std) of its affine map."""
        mean, std, cov = self.moments.stats(self.eps)
        out = []
        for k, (s_mean, s_std, s_cov) in enumerate(self.styles):
            r = k + 1 if self.masks is not None else 0
            dev = mean.device
            if self.method == "wct":
                assert cov is not None and s_cov is not None  # WCT targets keep the covariances
                out.append((wct_matrix(cov[r], s_cov.to(dev), self.eps), mean[r], s_mean.to(dev), std[r]))
            else:
                out.append((s_std.to(dev), mean[r], s_mean.to(dev), std[r]))
        return out

    def __call__(self, feat: Tensor, offset: tuple[int, int] = (0, 0)) -> Tensor:
        with torch.autocast(feat.device.type, enabled=False):  # statistics and matrices in float32/64
            return self._apply(feat, offset)

    def _apply(self, feat: Tensor, offset: tuple[int, int]) -> Tensor:
        if self._prepared is None:
            if self.moments.shift is None:
                self.observe(feat, offset)
            self._prepared = self._prepare()
        masks = self._region_masks(offset, (feat.shape[-2], feat.shape[-1]))
        if masks is not None:
            w = region_weights(masks).to(feat.device)
            out = feat.float() * (1.0 - w.sum(0, keepdim=True))
        else:
            w = self.weights.to(feat.device, torch.float32).view(-1, 1, 1, 1)
            out = torch.zeros((), device=feat.device)
        for k, (lin, c_mean, s_mean, c_std) in enumerate(self._prepared):
            if self.method == "wct":
                t = apply_affine(feat, lin, c_mean, s_mean)
            else:
                t = adain(feat, (s_mean, lin), self.eps, content_stats=(c_mean, c_std))
            out = out + w[k : k + 1] * t.float()
        return out.to(feat.dtype)
