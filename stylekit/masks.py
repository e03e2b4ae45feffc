"""Spatial control: one style per region, given by soft masks (Huang & Belongie 2017, §7.2).

How ``transfer(content, [s1, s2], masks=[m1, m2])`` combines them, at relu4_1:

1. every mask is read as grayscale in [0, 1] (uint8 0..255 or floats 0..1; a float mask with
   values up to 255 is taken as 0..255), with the checks of :mod:`stylekit.image` (files:
   missing, damaged, truncated, decompression bombs, over ``MAX_PIXELS``; arrays and tensors:
   rank, dtype, NaN / Inf, range, ``meta``), and resized to the relu4_1 map (1/8 of the content:
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
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .errors import ArgumentError, ImageError, ShapeError
from .image import Encoded, _check_size, _high_depth_gray, _load_pil, _open_encoded, _open_path, is_encoded

__all__ = ["MaskLike", "read_mask", "read_masks", "resize_masks", "region_weights", "blend_regions"]

MaskLike = Union[str, os.PathLike, Encoded, Image.Image, np.ndarray, Tensor]


def _from_array(a: np.ndarray, name: str) -> Tensor:
    if isinstance(a, np.ma.MaskedArray):
        if np.ma.is_masked(a):
            raise ShapeError(f"{name} is a masked array with masked entries; fill them first, e.g. with .filled(0)")
        a = a.data
    a = np.asarray(a)  # subclasses (np.matrix, memmap, ...) as plain arrays
    if a.ndim == 4 and a.shape[:2] == (1, 1):  # 1 x 1 x H x W
        a = a[0, 0]
    elif a.ndim == 3 and a.shape[0] == 1 and a.shape[2] not in (1, 3):  # 1 x H x W (not H x W x 1 or RGB)
        a = a[0]
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ShapeError(f"{name} must be a grayscale H x W mask, got shape {a.shape}")
    if a.dtype != np.bool_ and not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ShapeError(f"{name} has dtype {a.dtype}; use bool, uint8 or float")
    if min(a.shape) < 1:
        raise ShapeError(f"{name} is empty, shape {a.shape}")
    _check_size(name, a.shape[0], a.shape[1], 1)  # before any copy: a zero-stride view may declare gigapixels
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ShapeError(f"{name} contains NaN or Inf")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 255:
            raise ShapeError(f"{name} must hold values in [0, 1] or [0, 255], got [{lo:.4g}, {hi:.4g}]")
        if hi > 1.0 + 1e-3:
            a = a / 255.0
    return torch.from_numpy(np.ascontiguousarray(a.clip(0.0, 1.0)))[None, None]


def _from_pil(img: Image.Image, name: str) -> Tensor:
    """A decoded PIL image as a mask: 16-bit, 32-bit and float grayscale scaled as for images
    (:func:`stylekit.image._high_depth_gray`), any other mode converted to "L" (alpha dropped)."""
    try:
        if img.mode.startswith("I;16") or img.mode in ("I", "F"):
            return _from_array(_high_depth_gray(img), name)
        return _from_array(np.asarray(img.convert("L")), name)
    except (ValueError, OSError, TypeError) as e:
        raise ImageError(f"{name}: cannot convert an image of mode {img.mode!r} to grayscale ({e})") from None


def _from_tensor(mask: Tensor, name: str) -> Tensor:
    """The checks of image tensors (:func:`stylekit.image._tensor_to_tensor`), for a one-channel mask."""
    if mask.is_nested:
        raise ShapeError(f"{name} is a nested tensor; pass an H x W tensor")
    if mask.layout != torch.strided:
        raise ShapeError(f"{name} is a {str(mask.layout).replace('torch.', '')} tensor; pass a dense one (.to_dense())")
    if mask.is_meta:
        raise ShapeError(f"{name} is on the 'meta' device, which has shapes but no data; create it on a real device")
    if mask.is_quantized:
        raise ShapeError(f"{name} is a quantized tensor; pass a dense float or uint8 one (.dequantize())")
    t = mask.detach()
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 3 and t.shape[2] == 1:
        t = t[..., 0]
    if t.dim() != 2:
        raise ShapeError(f"{name} must be a single-channel H x W mask, got shape {tuple(mask.shape)}")
    if t.is_complex():  # the rest are floating, integer or bool
        raise ShapeError(f"{name} has dtype {mask.dtype}; use bool, uint8 or float")
    if min(t.shape) < 1:
        raise ShapeError(f"{name} is empty, shape {tuple(mask.shape)}")
    _check_size(name, t.shape[0], t.shape[1], 1)  # before copying an expanded (zero-stride) tensor
    if t.dtype == torch.uint8:
        return _from_array(t.cpu().numpy(), name)
    return _from_array(t.to(device="cpu", dtype=torch.float32).numpy(), name)  # bool, ints, floats: as float32


def read_mask(mask: MaskLike, *, name: str = "mask") -> Tensor:
    """A mask argument as a (1, 1, H, W) float32 tensor in [0, 1].

    Accepts a path, an image file's bytes or a binary file object, or a PIL image (converted to grayscale "L"; 16-bit and float grayscale scaled
    as :func:`stylekit.load_image` does), a numpy array or tensor (on any device) of shape
    H x W (or H x W x 1 / 1 x H x W / 1 x 1 x H x W) that is bool, uint8 (0..255), another
    integer type or float (0..1, or 0..255 if its maximum exceeds 1). A mask may have any size
    from 1 x 1 up to :data:`stylekit.image.MAX_PIXELS`.

    Files (paths, bytes, file objects) and PIL images go through the checks of :func:`stylekit.load_image` (missing file,
    not a regular file, not an image, damaged header, truncated data, decompression bomb, over
    ``MAX_PIXELS``: checked on the header, before decoding; EXIF orientation applied), arrays
    and tensors through the same checks as image arrays (rank, dtype, NaN / Inf, range, size
    before any copy; sparse, nested, quantized and ``meta`` tensors). Every failure raises
    :class:`~stylekit.errors.ImageError` or :class:`~stylekit.errors.ShapeError` naming ``name``.

    Example:
        >>> read_mask(np.full((4, 6), 255, np.uint8)).shape
        torch.Size([1, 1, 4, 6])
    """
    if isinstance(mask, (str, os.PathLike)):
        return _from_pil(_open_path(mask, name, min_side=1), name)
    if is_encoded(mask):
        return _from_pil(_open_encoded(mask, name, min_side=1), name)
    if isinstance(mask, Image.Image):
        return _from_pil(_load_pil(mask, name, min_side=1), name)
    if isinstance(mask, Tensor):
        return _from_tensor(mask, name)
    if isinstance(mask, np.ndarray):
        return _from_array(mask, name)
    raise ImageError(f"{name} must be a path, encoded bytes, a binary file object, a PIL image, a numpy array or a tensor, got {type(mask).__name__}")


def read_masks(masks: Sequence[MaskLike], count: int, *, name: str = "masks") -> list[Tensor]:
    """Read one mask per style; ``count`` is the number of styles."""
    if isinstance(masks, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray, Tensor)) or not isinstance(masks, Sequence):
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
