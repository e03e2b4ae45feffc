"""Spatial control: one style per region, given by soft masks (Huang & Belongie 2017, §7.2).

How ``transfer(content, [s1, s2], masks=[m1, m2])`` combines them, at relu4_1:

1. every mask is read as grayscale in [0, 1] (uint8 0..255 or floats 0..1; a float mask with
   values up to 255 is taken as 0..255) and resized to the relu4_1 map (1/8 of the content:
   area averaging when it shrinks, bilinear otherwise), stretched if its aspect differs;
2. each style's target ``t_k`` is computed on the whole map, with the content statistics of
   region k (mean and std weighted by mask k; the whole map's if mask k is empty there);
3. the masks are normalised where they overlap: ``w_k = m_k / max(1, sum_j m_j)``, and
   ``t = sum_k w_k t_k + (1 - sum_k w_k) f_c``: where no mask covers a pixel the content
   features stay (as with alpha = 0 there), and a soft edge fades from style to content;
4. ``alpha`` then blends ``t`` with the content features everywhere, as without masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from .errors import ArgumentError, ImageError, ShapeError

__all__ = ["MaskLike", "read_mask", "read_masks", "resize_masks", "region_weights", "blend_regions"]

MaskLike = Union[str, os.PathLike, Image.Image, np.ndarray, Tensor]


def _from_array(a: np.ndarray, name: str) -> Tensor:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ShapeError(f"{name} must be a grayscale H x W mask, got shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ShapeError(f"{name} contains NaN or Inf")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < 0 or hi > 255:
            raise ShapeError(f"{name} must hold values in [0, 1] or [0, 255], got [{lo:.4g}, {hi:.4g}]")
        if hi > 1.0 + 1e-3:
            a = a / 255.0
    else:
        raise ShapeError(f"{name} has dtype {a.dtype}; use bool, uint8 or float")
    if min(a.shape) < 1:
        raise ShapeError(f"{name} is empty, shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a.clip(0.0, 1.0)))[None, None]


def read_mask(mask: MaskLike, *, name: str = "mask") -> Tensor:
    """A mask argument as a (1, 1, H, W) float32 tensor in [0, 1].

    Accepts a path or PIL image (converted to grayscale "L"), a numpy array or tensor of shape
    H x W (or H x W x 1 / 1 x H x W / 1 x 1 x H x W) that is bool, uint8 (0..255) or float (0..1,
    or 0..255 if its maximum exceeds 1).

    Example:
        >>> read_mask(np.full((4, 6), 255, np.uint8)).shape
        torch.Size([1, 1, 4, 6])
    """
    if isinstance(mask, (str, os.PathLike)):
        try:
            with Image.open(Path(mask)) as img:
                return _from_array(np.asarray(img.convert("L")), name)
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file: {str(mask)!r}") from None
        except (UnidentifiedImageError, OSError) as e:
            raise ImageError(f"{name}: cannot read {str(mask)!r} as an image ({e})") from None
    if isinstance(mask, Image.Image):
        return _from_array(np.asarray(mask.convert("L")), name)
    if isinstance(mask, Tensor):
        t = mask.detach()
        while t.dim() > 2 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 2:
            raise ShapeError(f"{name} must be a single-channel H x W mask, got shape {tuple(mask.shape)}")
        if t.dtype == torch.bool:
            t = t.float()
        arr = t.cpu().float().numpy() if t.is_floating_point() else t.cpu().numpy()
        return _from_array(arr, name)
    if isinstance(mask, np.ndarray):
        return _from_array(mask, name)
    raise ImageError(f"{name} must be a path, PIL image, numpy array or tensor, got {type(mask).__name__}")


def read_masks(masks: Sequence[MaskLike], count: int, *, name: str = "masks") -> list[Tensor]:
    """Read one mask per style; ``count`` is the number of styles."""
    if isinstance(masks, (str, os.PathLike, Image.Image, np.ndarray, Tensor)) or not isinstance(masks, Sequence):
        raise ArgumentError(f"{name} must be a list with one mask per style, got {type(masks).__name__}")
    if len(masks) != count:
        raise ArgumentError(f"{name} has {len(masks)} masks but there are {count} styles: give one mask per style")
    return [read_mask(m, name=f"{name}[{i}]") for i, m in enumerate(masks)]


def resize_masks(masks: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    """Stack (1, 1, H, W) masks resized to ``size`` = (h, w) into a (K, 1, h, w) tensor.

    Area averaging where a mask shrinks in both directions, bilinear interpolation otherwise.

    Example:
        >>> resize_masks([torch.ones(1, 1, 64, 48)], (8, 6)).shape
        torch.Size([1, 1, 8, 6])
    """
    out = []
    for m in masks:
        if m.shape[-2:] == size:
            out.append(m.float())
        elif m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
            out.append(F.interpolate(m.float(), size=size, mode="area"))
        else:
            out.append(F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False))
    return torch.cat(out).clamp_(0.0, 1.0)


def region_weights(masks: Tensor) -> Tensor:
    """Blend weights from (K, 1, h, w) masks: divided by their sum where it exceeds 1.

    Example:
        >>> w = region_weights(torch.ones(2, 1, 2, 2))  # two full masks: half each
        >>> w[:, 0, 0, 0].tolist()
        [0.5, 0.5]
    """
    return masks / masks.sum(0, keepdim=True).clamp_min(1.0)


def blend_regions(content_feat: Tensor, targets: Sequence[Tensor], weights: Tensor) -> Tensor:
    """``sum_k w_k t_k + (1 - sum_k w_k) f_c`` for (K, 1, h, w) weights from :func:`region_weights`."""
    if weights.shape[0] != len(targets) or weights.shape[-2:] != content_feat.shape[-2:]:
        raise ShapeError(f"weights {tuple(weights.shape)} do not fit {len(targets)} targets of {tuple(content_feat.shape)}")
    w = weights.to(content_feat.device, torch.float32)
    out = content_feat.float() * (1.0 - w.sum(0, keepdim=True))
    for k, t in enumerate(targets):
        out = out + w[k : k + 1] * t.float()
    return out.to(content_feat.dtype)
