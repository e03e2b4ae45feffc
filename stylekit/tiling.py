"""Stylising big pictures tile by tile, with memory bounded by the tile size.

``transfer(photo, style, tile=512)`` (or ``tile="auto"``):

1. the picture (reflection-padded to a multiple of 8, as always) is cut into overlapping
   square tiles of ``tile`` px, at multiples of 8, overlapping by at least ``overlap`` px
   (default ``max(128, tile // 8)``), the last one flush with the border;
2. first pass: each tile is encoded to relu4_1 and the part of its map that it alone owns (the
   overlaps are split at their middles) is added to the content moments, so the mean and std
   (or covariance) are those of the whole picture: every tile gets the same AdaIN transform;
3. second pass: each tile is encoded again, transformed with those global statistics and
   decoded; its result goes onto a float32 canvas with feathered weights (linear ramps across
   a band of ``overlap / 2`` px in the middle of each overlap; the weights of all tiles sum to
   1), so no seam shows. Each tile's outer ``overlap / 4`` px (at least 32) at an inner edge get
   no weight: there the padding of the encoder makes a tile differ from the whole picture
   (the reflection padding of the decoder and of the picture's own border do not).

Memory: the canvas and the input (3 float32 per pixel each) plus one tile's activations;
time: 1.4 to 2 times the untiled call's (the encoder runs twice and the overlaps are computed
again; measured on 12 MP pictures, docs/controls.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from .errors import ArgumentError
from .model import AdaINModel
from .targets import Target

__all__ = ["AUTO_TILE", "AUTO_TILE_PIXELS", "MIN_TILE", "Tile", "check_tile", "resolve_tile", "tile_grid", "stylize_tiled"]

AUTO_TILE_PIXELS = 4_000_000
"""``tile="auto"`` tiles pictures of more than this many pixels."""
AUTO_TILE = 1024
"""The tile size ``tile="auto"`` uses."""
MIN_TILE = 256
"""Smallest tile: twice the smallest overlap (128 px), so the blending bands never meet."""


def check_tile(tile: Any) -> int | str | None:
    """Validate ``tile``: None, ``"auto"`` or an int >= :data:`MIN_TILE` (rounded down to a multiple of 8)."""
    if tile is None or tile == "auto":
        return tile
    if isinstance(tile, bool) or not isinstance(tile, int):
        raise ArgumentError(f"tile must be None, 'auto' or an int (tile side in pixels), got {tile!r}")
    if tile < MIN_TILE:
        raise ArgumentError(f"tile must be at least {MIN_TILE} px, got {tile}")
    return tile // 8 * 8


def resolve_tile(tile: int | str | None, height: int, width: int) -> int | None:
    """The tile size to use for an image, or None to stylise it whole."""
    if tile == "auto":
        tile = AUTO_TILE if height * width > AUTO_TILE_PIXELS else None
    if tile is None:
        return None
    size = int(tile)
    return None if height <= size and width <= size else size


def default_overlap(tile: int) -> int:
    """``max(128, tile // 8)``, a multiple of 8."""
    return max(128, tile // 8 // 8 * 8)


@dataclass(frozen=True)
class Tile:
    """One tile: pixel slices into the padded picture, its blend weights and the part it owns."""

    ys: slice
    xs: slice
    wy: Tensor  # (tile_h,) blend weights along y
    wx: Tensor  # (tile_w,)
    own_y: slice  # the rows it owns, in pixels of the picture (multiples of 8)
    own_x: slice


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (n - 1)
    starts = [int(i * step) // 8 * 8 for i in range(n - 1)] + [length - tile]
    return [(s, s + tile) for s in starts]


def _axis(length: int, tile: int, overlap: int) -> list[tuple[slice, Tensor, slice]]:
    """Per span: its slice, its 1-D blend weights and the slice it owns."""
    spans = _spans(length, tile, overlap)
    # a band of overlap / 2 px centred in each overlap, where the weight ramps linearly from one tile to the next
    cuts = []
    for (_, e0), (s1, _) in zip(spans, spans[1:]):
        band = min(overlap // 2, e0 - s1)
        mid = (s1 + e0) // 2 // 8 * 8
        lo = max(s1, min(mid - band // 2, e0 - band))
        cuts.append((lo, lo + band, mid))
    out = []
    for i, (s, e) in enumerate(spans):
        pos = torch.arange(s, e, dtype=torch.float32) + 0.5
        w = torch.ones(e - s)
        own_lo, own_hi = 0, length
        if i > 0:
            lo, hi, mid = cuts[i - 1]
            w = w * ((pos - lo) / (hi - lo)).clamp(0.0, 1.0)
            own_lo = mid
        if i < len(spans) - 1:
            lo, hi, mid = cuts[i]
            w = w * (1.0 - (pos - lo) / (hi - lo)).clamp(0.0, 1.0)
            own_hi = mid
        out.append((slice(s, e), w, slice(own_lo, own_hi)))
    return out


def tile_grid(height: int, width: int, tile: int, overlap: int | None = None) -> list[Tile]:
    """The tiles covering a ``height`` x ``width`` picture (both multiples of 8).

    Example:
        >>> tiles = tile_grid(480, 640, 256)
        >>> len(tiles), torch.stack([t.wy[:, None] * t.wx for t in tiles]).shape
        (12, torch.Size([12, 256, 256]))
    """
    overlap = default_overlap(tile) if overlap is None else overlap
    if height % 8 or width % 8 or tile % 8 or overlap % 8:
        raise ArgumentError(f"picture {height}x{width}, tile {tile} and overlap {overlap} must be multiples of 8")
    if tile < 2 * overlap:
        raise ArgumentError(f"tile ({tile}) must be at least twice the overlap ({overlap})")
    return [
        Tile(ys, xs, wy, wx, oy, ox)
        for ys, wy, oy in _axis(height, tile, overlap)
        for xs, wx, ox in _axis(width, tile, overlap)
    ]


def stylize_tiled(
    model: AdaINModel,
    x: Tensor,
    target: Target,
    alpha: float,
    tile: int,
    *,
    overlap: int | None = None,
    post: Callable[[Tensor, Tensor], Tensor] | None = None,
    progress: bool = False,
) -> Tensor:
    """Stylise a (B, 3, H, W) picture (H, W multiples of 8) tile by tile; returns the float32 canvas.

    ``target`` must not have been used yet: the first pass gives it the whole picture's
    content statistics. ``post(result_tile, content_tile)`` is applied to each clamped tile
    result before blending (e.g. :func:`stylekit.color.keep_luminance`). ``progress`` shows a
    tqdm bar that counts each tile twice (once per pass).
    """
    tiles = tile_grid(x.shape[-2], x.shape[-1], tile, overlap)
    with tqdm(total=2 * len(tiles), desc=f"tiles ({len(tiles)} x 2 passes)", unit="tile", disable=not progress, leave=False) as bar:
        return _two_passes(model, x, target, alpha, tiles, post, bar)


def _two_passes(
    model: AdaINModel,
    x: Tensor,
    target: Target,
    alpha: float,
    tiles: list[Tile],
    post: Callable[[Tensor, Tensor], Tensor] | None,
    bar: tqdm,
) -> Tensor:

    def crop(t: Tile) -> Tensor:
        return x[..., t.ys, t.xs].contiguous(memory_format=torch.channels_last)

    for t in tiles:  # first pass: global content statistics from the owned part of each tile
        f = model.encoder.encode(crop(t))
        oy = slice((t.own_y.start - t.ys.start) // 8, (t.own_y.stop - t.ys.start) // 8)
        ox = slice((t.own_x.start - t.xs.start) // 8, (t.own_x.stop - t.xs.start) // 8)
        target.observe(f[..., oy, ox], (t.own_y.start // 8, t.own_x.start // 8))
        del f
        bar.update()
    canvas = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for t in tiles:
        xt = crop(t)
        offset = (t.ys.start // 8, t.xs.start // 8)
        y = model.stylize_with(xt, functools.partial(target, offset=offset), alpha).float().clamp_(0.0, 1.0)
        if post is not None:
            y = post(y, xt)
        w = (t.wy[:, None] * t.wx[None, :]).to(x.device)
        canvas[..., t.ys, t.xs].addcmul_(y, w)
        del y
        bar.update()
    return canvas
