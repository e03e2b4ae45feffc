"""Images in and out: file paths, PIL images, numpy arrays and torch tensors, converted in one place.

Everything is read into a float32 RGB tensor (B, 3, H, W) in [0, 1]; :class:`ImageInput`
remembers what came in so a result can go back out in the same type. Bad input raises
:class:`~stylekit.errors.ImageError` or :class:`~stylekit.errors.ShapeError` naming the argument.
"""

from __future__ import annotations

import inspect
import io
import os
import re
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import IO, Any, Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .errors import ArgumentError, ImageError, ShapeError

__all__ = [
    "MAX_PIXELS", "MIN_SIDE", "WRITE_EXTENSIONS", "Encoded", "ImageLike", "ImageInput", "read_image", "load_image", "to_pil",
    "save_image", "resize_short_side", "check_size_arg", "pad_to_multiple", "crop_padding",
]  # fmt: skip

MAX_PIXELS = 64_000_000
"""Largest accepted image, in pixels per image (height x width). Read at call time: may be changed."""

MIN_SIDE = 16
"""Smallest accepted side, in pixels (the encoder downsamples by 8 before relu4_1)."""

_TOL = 1e-3  # float inputs may stray this far outside [0, 1] (rounding) and are clamped

Encoded = Union[bytes, bytearray, memoryview, IO[bytes]]
"""An encoded image file (PNG, JPEG, ...): its bytes, or a binary file object to read them from."""
ImageLike = Union[str, os.PathLike, Encoded, Image.Image, np.ndarray, Tensor]
Kind = Literal["path", "encoded", "pil", "numpy", "tensor"]


@dataclass
class ImageInput:
    """An image argument read into a tensor, with what is needed to give a result back in its type.

    Attributes:
        tensor: float32 RGB in [0, 1], shape (B, 3, H, W); on the input tensor's device, else CPU.
        kind: ``"path"``, ``"encoded"`` (bytes or a file object), ``"pil"``, ``"numpy"`` or ``"tensor"``.
        np_dtype: dtype of a numpy input.
        batched: a tensor input was 4-D (B, 3, H, W) rather than (3, H, W).
        device: device of a tensor input.
        dtype: dtype of a tensor input.

    Example:
        >>> inp = read_image(np.zeros((20, 30, 3), np.uint8))
        >>> inp.tensor.shape, inp.kind
        (torch.Size([1, 3, 20, 30]), 'numpy')
        >>> inp.to_output(inp.tensor).shape, inp.to_output(inp.tensor).dtype
        ((20, 30, 3), dtype('uint8'))
    """

    tensor: Tensor
    kind: Kind
    np_dtype: np.dtype | None = None
    batched: bool = False
    device: torch.device | None = None
    dtype: torch.dtype | None = None

    def to_output(self, x: Tensor) -> Image.Image | np.ndarray | Tensor:
        """Convert a (B, 3, H, W) float result in [0, 1] back to the input's type.

        Path, encoded (bytes, file object) and PIL inputs give an RGB ``PIL.Image``; numpy inputs an H x W x 3 array of the
        same dtype (uint8 and uint16 rounded, floats in [0, 1]; a grayscale H x W input gives H x W x 3);
        tensor inputs a tensor of the same rank, dtype and device.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeError(f"result must be (B, 3, H, W), got {tuple(x.shape)}")
        x = x.detach()
        if self.kind == "tensor":
            out = x if self.batched else x[0]
            return out.to(device=self.device, dtype=self.dtype)
        if x.shape[0] != 1:
            raise ShapeError(f"a {self.kind} image has batch size 1, got a result of batch {x.shape[0]}")
        if self.kind in ("path", "encoded", "pil"):
            return to_pil(x)
        arr = x[0].permute(1, 2, 0).float().cpu().numpy()
        top = None if self.np_dtype is None else _full_scale(self.np_dtype)
        if top is not None:
            return (arr * np.float32(top)).round().clip(0, top).astype(self.np_dtype)
        return arr.clip(0.0, 1.0).astype(self.np_dtype)


def read_image(image: ImageLike, *, name: str = "image") -> ImageInput:
    """Read any supported image argument into an :class:`ImageInput`.

    Args:
        image: a file path (``str`` or ``os.PathLike``), an encoded image file's bytes
            (``bytes``, ``bytearray``, ``memoryview``) or a binary file object (``open(p, "rb")``,
            ``io.BytesIO``, an upload), a ``PIL.Image``, a numpy array (H x W x 3 or H x W; uint8,
            uint16, or float16/32/64 in [0, 1]) or a torch tensor ((3, H, W) or (B, 3, H, W), floating,
            in [0, 1], on any device).
        name: the argument's name, used in error messages.

    Raises:
        ImageError: missing, unreadable, truncated, too small or too large image, or an unknown type.
        ShapeError: an array or tensor with the wrong shape, dtype or values.
    """
    if isinstance(image, (str, os.PathLike)):
        return ImageInput(_pil_to_tensor(_open_path(image, name), name), "path")
    if is_encoded(image):
        return ImageInput(_pil_to_tensor(_open_encoded(image, name), name), "encoded")
    if isinstance(image, Image.Image):
        return ImageInput(_pil_to_tensor(_load_pil(image, name), name), "pil")
    if isinstance(image, np.ndarray):
        return ImageInput(_numpy_to_tensor(image, name), "numpy", np_dtype=image.dtype)
    if isinstance(image, Tensor):
        return ImageInput(
            _tensor_to_tensor(image, name), "tensor", batched=image.dim() == 4, device=image.device, dtype=image.dtype
        )
    raise ImageError(
        f"{name} must be a file path, encoded bytes, a binary file object, a PIL image, a numpy array "
        f"or a torch tensor, got {type(image).__module__}.{type(image).__qualname__}"
    )


def load_image(image: ImageLike, *, name: str = "image") -> Tensor:
    """Any supported image argument as a float32 RGB tensor (B, 3, H, W) in [0, 1].

    B is 1 except for a batched (B, 3, H, W) tensor input. EXIF orientation is applied,
    an animated file gives its first frame (a PIL image: its current frame), transparency
    is composited on white, and
    palette, grayscale, 16-bit, float and CMYK images are converted to RGB.
    See :func:`read_image` for the accepted inputs and errors.

    Example:
        >>> load_image(np.full((16, 24), 255, np.uint8)).shape
        torch.Size([1, 3, 16, 24])
        >>> load_image(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
        >>> with open("stylekit/examples/chelsea_cat.jpg", "rb") as f:  # a file object, or its bytes
        ...     load_image(f).shape
        torch.Size([1, 3, 300, 451])
    """
    return read_image(image, name=name).tensor


# --------------------------------------------------------------------------- size checks


def _check_size(name: str, h: int, w: int, min_side: int = MIN_SIDE) -> None:
    """Refuse a picture over :data:`MAX_PIXELS`, or with a side under ``min_side`` (masks pass 1)."""
    if h * w > MAX_PIXELS:
        raise ImageError(
            f"{name} is too large: {w}x{h} = {h * w / 1e6:.1f} megapixels (max {MAX_PIXELS / 1e6:g} MP)"
        )
    if min(h, w) < min_side:
        raise ImageError(f"{name} is too small (min {min_side} px per side): got {w}x{h}")


# --------------------------------------------------------------------------- files and PIL


def is_url(text: str) -> bool:
    """Whether ``text`` starts like a URL (``scheme://``): stylekit reads local files only."""
    return re.match(r"[a-zA-Z][a-zA-Z0-9+.-]+://", text) is not None


WRITE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".avif", ".tif", ".tiff", ".bmp", ".dib", ".gif", ".pdf",
    ".ppm", ".pnm", ".tga", ".jp2", ".j2k", ".qoi", ".sgi", ".rgb", ".pcx",
})  # fmt: skip
"""The file extensions :func:`save_image` writes (where this Pillow can): formats that store an
RGB picture at its size under a name that says so. Not .ico / .icns (they resize it), .pgm /
.pbm (Pillow writes colour into them), nor formats Pillow reads but cannot write RGB to (.psd, .blp, .xbm, ...)."""


def unknown_extension(path: str | os.PathLike[str]) -> str | None:
    """What is wrong with ``path``'s extension for writing an image; None where it is one of
    :data:`WRITE_EXTENSIONS` and this Pillow can write its format."""
    ext = Path(path).suffix.lower()
    use = "use .jpg, .png, .webp, .tif, ..."
    if not ext:
        return f"no image file extension ({use})"
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        return f"unknown image file extension {ext!r} ({use})"
    if ext not in WRITE_EXTENSIONS or fmt not in Image.SAVE:
        return f"stylekit does not write {fmt} files ({ext}); {use}"
    return None


def _open_path(path: str | os.PathLike[str], name: str, min_side: int = MIN_SIDE) -> Image.Image:
    """Open, check and decode an image file (first frame, EXIF orientation applied); every failure
    is an :class:`ImageError` naming ``name``. Sets no process-wide state (no warnings filter)."""
    p = Path(path)
    try:
        exists, is_dir, is_file = p.exists(), p.is_dir(), p.is_file()
    except (OSError, ValueError) as e:  # a name too long, a NUL byte, a symlink loop, ...
        raise ImageError(f"{name}: cannot use the path {str(p)[:200]!r}: {getattr(e, 'strerror', None) or e}") from None
    if not exists:
        if is_url(str(path)):
            raise ImageError(f"{name}: {str(path)[:200]!r} is a URL; stylekit reads local files only (download it first)")
        raise ImageError(f"{name}: no such file: {str(p)!r}")
    if is_dir:
        raise ImageError(f"{name}: {str(p)!r} is a directory, not an image file")
    if not is_file:  # a FIFO would block open() forever, a device may never end
        raise ImageError(f"{name}: {str(p)!r} is not a regular file (a pipe, socket or device?); read it into a PIL image first")
    try:
        with open(p, "rb") as f:
            return _decode(f, name, repr(str(p)), min_side)
    except OSError as e:
        raise ImageError(f"{name}: cannot read {str(p)!r}: {e.strerror or e}") from None


def is_encoded(image: object) -> bool:
    """Whether ``image`` is an encoded image file: bytes, a bytearray, a memoryview or a file object."""
    return isinstance(image, (bytes, bytearray, memoryview)) or (hasattr(image, "read") and not isinstance(image, Image.Image))


def _open_encoded(data: Any, name: str, min_side: int = MIN_SIDE) -> Image.Image:
    """Decode an encoded image file given as bytes (``bytes``, ``bytearray``, ``memoryview``) or
    as a binary file object, with the same checks as a file path. A file object is read from
    where it stands to its end (at most 16 x :data:`MAX_PIXELS` bytes) and left open."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        buf, what = bytes(data), "the data given"
    else:
        what = f"the file object {getattr(data, 'name', type(data).__name__)!r}"
        if isinstance(data, io.TextIOBase):
            raise ImageError(f"{name}: {what} is open in text mode; open the image with 'rb'")
        if inspect.iscoroutinefunction(getattr(data, "read", None)):  # e.g. an async web framework's upload
            raise ImageError(f"{name}: {what} has an async read(); pass its bytes instead (data = await upload.read())")
        limit = 16 * MAX_PIXELS
        try:
            got = data.read(limit + 1)
        except (OSError, ValueError) as e:  # unreadable, closed, not open for reading
            raise ImageError(f"{name}: cannot read {what}: {getattr(e, 'strerror', None) or e}") from None
        if inspect.isawaitable(got):
            getattr(got, "close", lambda: None)()  # never awaited: no "coroutine was never awaited" warning
            raise ImageError(f"{name}: read() of {what} gave an awaitable; pass its bytes instead (data = await upload.read())")
        if not isinstance(got, (bytes, bytearray)):
            raise ImageError(f"{name}: {what} gave {type(got).__name__}, not bytes; open the image with 'rb'")
        if len(got) > limit:
            raise ImageError(f"{name}: {what} holds over {limit:,} bytes, too much for an image of at most {MAX_PIXELS / 1e6:g} MP")
        buf = bytes(got)
    if not buf:
        raise ImageError(f"{name}: {what} is empty, not an image")
    return _decode(io.BytesIO(buf), name, f"{what} ({len(buf):,} bytes)", min_side)


def _decode(f: Any, name: str, where: str, min_side: int) -> Image.Image:
    """Open, check and decode the image in the binary stream ``f`` (described as ``where``)."""
    try:
        try:
            img = Image.open(f)
        except UnidentifiedImageError:
            raise ImageError(f"{name}: {where} is not an image (or not in a format Pillow reads)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise  # (the warning is an exception where warnings are errors)
        except Exception as e:  # Pillow's header parsers raise OSError, ValueError, struct.error, ...
            if isinstance(e, (OSError, EOFError)) and "truncat" in str(e).lower():
                raise ImageError(f"{name}: {where} is truncated or incomplete ({e})") from None
            raise ImageError(f"{name}: {where} has a damaged header ({type(e).__name__}: {e})") from None
        w, h = img.size
        _check_size(name, h, w, min_side)
        limit = Image.MAX_IMAGE_PIXELS  # Pillow's bomb limit (it only warns below twice that), checked
        if limit and w * h > limit:  # here: a warnings filter would not be thread-safe
            raise ImageError(f"{name}: {where} is too large to decode safely ({w}x{h} pixels, over Pillow's {limit})")
        return _load_pil(img, name, where=where, min_side=min_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: {where} is too large to decode safely ({e})") from None


def _load_pil(img: Image.Image, name: str, where: str | None = None, min_side: int = MIN_SIDE) -> Image.Image:
    """Check the size, decode the first frame fully and apply the EXIF orientation."""
    where = where or "the image"
    w, h = img.size
    _check_size(name, h, w, min_side)  # before decoding: a huge image is refused without allocating it
    try:
        img.load()  # the current frame: the first one of a freshly opened animated file
    except MemoryError:
        raise ImageError(f"{name}: {where} is too large to decode (out of memory)") from None
    except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, EOFError, ValueError, struct.error, ...
        if isinstance(e, EOFError) or "truncat" in str(e).lower():
            raise ImageError(f"{name}: {where} is truncated or incomplete ({e})") from None
        raise ImageError(f"{name}: {where} could not be decoded ({e})") from None
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF: keep the pixels as stored
        out = img
    if out is img:  # detach from the file: exif_transpose copies only when it rotates
        out = img.copy()
    return out


def _pil_to_tensor(img: Image.Image, name: str) -> Tensor:
    w, h = img.size
    _check_size(name, h, w)
    arr = _pil_to_float_rgb(img, name)
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    rgb, a = rgba[..., :3].astype(np.float32) / 255.0, rgba[..., 3:].astype(np.float32) / 255.0
    return rgb * a + (1.0 - a)


def _pil_to_float_rgb(img: Image.Image, name: str) -> np.ndarray:
    """H x W x 3 float32 in [0, 1] for any Pillow mode."""
    mode = img.mode
    try:
        if mode == "RGB":
            return np.asarray(img, dtype=np.float32) / 255.0
        if mode == "La":  # premultiplied: Pillow converts it to LA only
            img, mode = img.convert("LA"), "LA"
        if mode in ("RGBA", "RGBa", "LA", "PA") or (mode == "P" and "transparency" in img.info):
            return _composite_on_white(np.asarray(img.convert("RGBA")))
        if mode.startswith("I;16") or mode in ("I", "F"):
            g = _high_depth_gray(img)
            return np.repeat(g[..., None], 3, axis=2)
        rgb = img.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV, RGBX, ...
        return np.asarray(rgb, dtype=np.float32) / 255.0
    except (ValueError, OSError, TypeError) as e:
        raise ImageError(f"{name}: cannot convert an image of mode {mode!r} to RGB ({e})") from None


def _high_depth_gray(img: Image.Image) -> np.ndarray:
    """16-bit, 32-bit integer or float grayscale as float32 in [0, 1].

    ``I;16*`` is scaled by 1/65535. ``I`` (what older Pillow gives 16-bit PNGs, and what
    ``convert("I")`` gives 8-bit images) is scaled by 1/255 when it lies in [0, 255], by
    1/65535 when it lies in [0, 65535], else min-max normalised. ``F`` is kept when it lies
    in [0, 1], else min-max normalised.
    """
    a = np.asarray(img).astype(np.float64)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if img.mode == "I" and lo >= 0 and hi <= 255:
        a = a / 255.0
    elif img.mode.startswith("I;16") or (img.mode == "I" and lo >= 0 and hi <= 65535):
        a = a / 65535.0
    elif not (img.mode == "F" and lo >= 0 and hi <= 1):
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a.clip(0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- numpy and torch

_NP_FLOATS = (np.float16, np.float32, np.float64)


def _full_scale(dtype: np.dtype) -> int | None:
    """The value that stands for full intensity in a numpy image of ``dtype``: 255 for uint8,
    65535 for uint16 (either byte order); None for other dtypes."""
    return 2 ** (8 * dtype.itemsize) - 1 if dtype.kind == "u" and dtype.itemsize in (1, 2) else None


def _numpy_to_tensor(arr: np.ndarray, name: str) -> Tensor:
    if isinstance(arr, np.ma.MaskedArray):
        if np.ma.is_masked(arr):
            raise ShapeError(f"{name} is a masked array with masked entries; fill them first, e.g. with .filled(0)")
        arr = arr.data
    arr = np.asarray(arr)  # subclasses (np.matrix, memmap, ...) as plain arrays
    shape = arr.shape
    if arr.ndim == 3 and shape[2] == 4:
        raise ShapeError(
            f"{name} has 4 channels (RGBA?) with shape {shape}; composite it onto a background "
            "first or pass a PIL image, which is composited on white"
        )
    if arr.ndim == 3 and shape[0] in (1, 3) and shape[2] not in (1, 3):
        raise ShapeError(f"{name} looks channels-first {shape}; numpy images must be H x W x 3 (channels last)")
    if not (arr.ndim == 2 or (arr.ndim == 3 and shape[2] in (1, 3))):
        raise ShapeError(f"{name} must be an H x W x 3 (RGB) or H x W (grayscale) array, got shape {shape}")
    top = _full_scale(arr.dtype)
    if top is None and arr.dtype.type not in _NP_FLOATS:
        raise ShapeError(
            f"{name} has dtype {arr.dtype}; numpy images must be uint8 (0-255), uint16 (0-65535) "
            "or float16/32/64 in [0, 1]"
        )
    _check_size(name, shape[0], shape[1])
    if top is not None:  # astype copies: contiguous, writable, whatever the strides
        x = arr.astype(np.float32) / np.float32(top)
    else:
        x = arr.astype(np.float32)
        if not np.isfinite(x).all():
            raise ShapeError(f"{name} contains NaN or Inf")
        lo, hi = float(x.min()), float(x.max())
        if lo < -_TOL or hi > 1 + _TOL:
            raise ShapeError(f"float {name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
        np.clip(x, 0.0, 1.0, out=x)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).unsqueeze(0).contiguous()


def _tensor_to_tensor(t: Tensor, name: str) -> Tensor:
    if t.is_nested:
        raise ShapeError(f"{name} is a nested tensor; pass a (3, H, W) or (B, 3, H, W) tensor")
    if t.layout != torch.strided:
        raise ShapeError(f"{name} is a {str(t.layout).replace('torch.', '')} tensor; pass a dense one (.to_dense())")
    if t.is_meta:
        raise ShapeError(f"{name} is on the 'meta' device, which has shapes but no data; create it on a real device")
    shape = tuple(t.shape)
    if t.dim() not in (3, 4):
        raise ShapeError(f"{name} must be a (3, H, W) or (B, 3, H, W) tensor, got shape {shape}")
    if t.shape[-3] != 3:
        hint = " (channels-last? use .permute)" if t.shape[-1] == 3 else ""
        raise ShapeError(f"{name} must have 3 (RGB) channels in dim {t.dim() - 3}, got shape {shape}{hint}")
    if t.dim() == 4 and t.shape[0] == 0:
        raise ShapeError(f"{name} is an empty batch, shape {shape}")
    if not t.is_floating_point():
        raise ShapeError(f"{name} has dtype {t.dtype}; tensors must be floating point in [0, 1] (e.g. x / 255)")
    _check_size(name, t.shape[-2], t.shape[-1])
    return _tensor_values(t, name)


def _tensor_values(t: Tensor, name: str) -> Tensor:
    """A floating (3, H, W) / (B, 3, H, W) tensor as float32 (B, 3, H, W), refused if it holds NaN,
    Inf or values outside [0, 1] (beyond rounding), then clamped."""
    x = t.detach().to(torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if not torch.isfinite(x).all():
        raise ShapeError(f"{name} contains NaN or Inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_TOL or hi > 1 + _TOL:
        hint = " (0-255 values? divide by 255)" if hi > 2 else ""
        raise ShapeError(f"{name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}")
    return x.clamp(0.0, 1.0).contiguous()


# --------------------------------------------------------------------------- out


def to_pil(x: Tensor) -> Image.Image:
    """A (3, H, W) or (1, 3, H, W) float tensor in [0, 1] (any device) as an RGB ``PIL.Image``.

    Values are clamped to [0, 1] and rounded to 8 bits.

    Example:
        >>> to_pil(torch.ones(3, 16, 20)).size
        (20, 16)
    """
    if not isinstance(x, Tensor):
        raise ShapeError(f"to_pil needs a tensor, got {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3 or not x.is_floating_point():
        raise ShapeError(f"to_pil needs a floating (3, H, W) or (1, 3, H, W) tensor, got {tuple(x.shape)} {x.dtype}")
    arr = x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def save_image(image: Tensor | Image.Image | np.ndarray, path: str | os.PathLike[str], *, quality: int = 95) -> Path:
    """Write an image to ``path`` (format from the extension; parent folders are created).

    Args:
        image: a ``PIL.Image``, a float tensor (3, H, W) / (1, 3, H, W), or a numpy array
            accepted by :func:`load_image` (with its checks). Tensor values are clamped to
            [0, 1] (a decoder's raw output may overshoot a little); NaN, Inf and values over 2
            (0-255 data?) are refused. A PIL image is written in its own mode where the format
            holds it (RGBA or 16-bit in a PNG); where it does not (RGBA, 16-bit or float in a
            JPEG), it is written as :func:`load_image` reads it: RGBA composited on white,
            16-bit and float grayscale scaled.
        path: where to write, e.g. ``"out/result.jpg"``; the extension must be one of
            :data:`WRITE_EXTENSIONS` (.jpg, .png, .webp, .tif, .bmp, .gif, ...).
        quality: JPEG / WebP / AVIF quality, 1 to 100.

    Returns:
        The path written.

    Raises:
        ArgumentError: a bad ``path`` type or extension, or ``quality`` out of range.
        ShapeError: a tensor or array of the wrong shape, dtype or values.
        ImageError: the file or its folder cannot be written.

    Example:
        >>> import tempfile
        >>> p = save_image(torch.rand(3, 16, 16), Path(tempfile.mkdtemp()) / "a" / "x.jpg")
        >>> Image.open(p).size
        (16, 16)
    """
    if not isinstance(image, (Image.Image, Tensor, np.ndarray)):
        raise ImageError(f"image must be a PIL image, tensor or numpy array, got {type(image).__name__}")
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes) or not str(path):
        raise ArgumentError(f"path must be a non-empty str or os.PathLike (e.g. 'out.jpg'), got {path!r:.80}")
    if isinstance(quality, bool) or not isinstance(quality, Integral) or not 1 <= quality <= 100:
        raise ArgumentError(f"quality must be an int from 1 to 100, got {quality!r}")
    p = Path(path)
    problem = unknown_extension(p)
    if problem:  # before converting the picture, which may be large
        raise ArgumentError(f"path={str(p)!r}: {problem}")
    if isinstance(image, Image.Image):
        img = image
    elif isinstance(image, Tensor):
        img = to_pil(_result_tensor(image))
    else:
        img = to_pil(_numpy_to_tensor(image, "image"))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(f"cannot create the folder {str(p.parent)!r} for {str(p)!r}: {e.strerror or e}") from None
    try:
        try:
            img.save(p, quality=int(quality))
        except (OSError, KeyError, ValueError, TypeError):
            if img.mode in ("RGB", "L"):
                raise
            img = _as_rgb(img)  # a mode this format cannot hold (RGBA, I;16 or F in a JPEG, ...)
            img.save(p, quality=int(quality))
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ImageError(f"cannot write {str(p)!r}: {getattr(e, 'strerror', None) or e}") from None
    return p


def _result_tensor(x: Tensor) -> Tensor:
    """A (3, H, W) / (1, 3, H, W) float tensor to write: NaN, Inf and 0-255 data refused, the rest clamped."""
    if not x.is_floating_point() or x.dim() not in (3, 4) or x.shape[-3] != 3 or (x.dim() == 4 and x.shape[0] != 1):
        raise ShapeError(f"image must be a floating (3, H, W) or (1, 3, H, W) tensor, got {tuple(x.shape)} {x.dtype}")
    y = x.detach().float()
    if not torch.isfinite(y).all():
        raise ShapeError("image contains NaN or Inf")
    if float(y.max()) > 2:
        raise ShapeError(f"image must be in [0, 1], got values up to {float(y.max()):.4g} (0-255 values? divide by 255)")
    return y.clamp(0.0, 1.0)


def _as_rgb(img: Image.Image) -> Image.Image:
    """A PIL image of any mode as RGB, the way :func:`load_image` converts it (no EXIF turn: only the mode changes)."""
    img.load()
    arr = _pil_to_float_rgb(img, "image")
    return Image.fromarray((arr * 255.0).round().clip(0, 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------- resizing


def check_size_arg(size: Any, name: str = "size") -> int | None:
    """Validate a short-side ``size`` argument: ``None`` or an int >= :data:`MIN_SIDE`."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, Integral):
        raise ArgumentError(f"{name} must be an int (the short side in pixels) or None, got {size!r}")
    if size < MIN_SIDE:
        raise ArgumentError(f"{name} must be at least {MIN_SIDE} px, got {size}")
    return int(size)


def resize_short_side(x: Tensor, size: int) -> Tensor:
    """Resize (B, 3, H, W) images so the short side is ``size`` (antialiased bilinear, aspect kept).

    Example:
        >>> resize_short_side(torch.rand(1, 3, 40, 80), 20).shape
        torch.Size([1, 3, 20, 40])
    """
    size = check_size_arg(size)  # type: ignore[assignment]
    if x.dim() != 4:
        raise ShapeError(f"resize_short_side needs a (B, C, H, W) tensor, got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) == (h, w):
        return x
    if nh * nw > MAX_PIXELS:
        raise ArgumentError(
            f"size={size} would make a {nw}x{nh} image ({nh * nw / 1e6:.1f} MP), over the {MAX_PIXELS / 1e6:g} MP limit"
        )
    y = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return y.clamp(0.0, 1.0).to(x.dtype)


def _pad_amounts(n: int, multiple: int) -> tuple[int, int]:
    extra = -n % multiple
    return extra // 2, extra - extra // 2


def pad_to_multiple(x: Tensor, multiple: int = 8) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Pad (B, C, H, W) so H and W are multiples of ``multiple``; returns the tensor and (left, right, top, bottom).

    Reflection padding, or replicate padding where the image is too small to reflect.

    Example:
        >>> y, pads = pad_to_multiple(torch.rand(1, 3, 37, 53))
        >>> y.shape, pads
        (torch.Size([1, 3, 40, 56]), (1, 2, 1, 2))
    """
    h, w = x.shape[-2:]
    top, bottom = _pad_amounts(h, multiple)
    left, right = _pad_amounts(w, multiple)
    pads = (left, right, top, bottom)
    if not any(pads):
        return x, pads
    mode = "reflect" if max(top, bottom) < h and max(left, right) < w else "replicate"
    return F.pad(x, pads, mode=mode), pads


def crop_padding(x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]
