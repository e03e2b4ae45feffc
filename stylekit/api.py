"""The high-level API: :func:`transfer` for one call, :class:`StyleTransfer` to keep a model and reuse styles."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from numbers import Real
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .device import autocast, resolve_device, resolve_dtype
from .errors import ArgumentError, ShapeError
from .image import ImageInput, ImageLike, check_size_arg, crop_padding, pad_to_multiple, read_image, resize_short_side
from .model import AdaINModel

__all__ = ["Style", "StyleTransfer", "transfer", "get_model", "clear_model_cache"]

ImageOut = Union[Image.Image, np.ndarray, Tensor]

_MODELS: dict[tuple[torch.device, torch.dtype], AdaINModel] = {}
_MODELS_LOCK = threading.Lock()


STYLE_SIZE = 512
"""Default short side of style images (larger ones are scaled down to it)."""


def _build_model(device: torch.device) -> AdaINModel:
    """The shipped model, ready for inference on ``device``."""
    return _prepare(AdaINModel.from_pretrained(), device)


def _prepare(model: AdaINModel, device: torch.device) -> AdaINModel:
    model = model.to(device, memory_format=torch.channels_last)
    model.eval()
    model.requires_grad_(False)
    return model


def _canonical(device: torch.device) -> torch.device:
    """``cuda`` and ``cuda:0`` are the same model-cache key."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def get_model(device: str | torch.device = "auto", dtype: str | torch.dtype | None = "auto") -> AdaINModel:
    """The shipped :class:`~stylekit.model.AdaINModel` on ``device``, built once per (device, dtype).

    Thread-safe. The weights stay in float32; ``dtype`` is the autocast dtype used with it.

    Raises:
        ArgumentError: unknown or unavailable device or dtype.
        WeightsError: the shipped weights are missing or corrupted.

    Example:
        >>> get_model("cpu", "fp32") is get_model("cpu", "fp32")
        True
    """
    dev = _canonical(resolve_device(device))
    key = (dev, resolve_dtype(dev, dtype))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = _build_model(dev)
    return model


def clear_model_cache() -> None:
    """Forget the models built by :func:`get_model` (frees their memory once unused)."""
    with _MODELS_LOCK:
        _MODELS.clear()


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, Real):
        raise ArgumentError(f"alpha must be a real number in [0, 1], got {alpha!r} ({type(alpha).__name__})")
    value = float(alpha)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ArgumentError(f"alpha must be in [0, 1], got {alpha!r}")
    return value


@dataclass(frozen=True, eq=False)
class Style:
    """A style image reduced to what AdaIN needs: the relu4_1 channel mean and std (float32).

    Made by :meth:`StyleTransfer.encode_style`; small (2 x 512 numbers per image), so one style
    can be applied to many pictures without encoding it again.

    Attributes:
        mean: (B, 512, 1, 1) float32, B = 1 for a single style image.
        std: (B, 512, 1, 1) float32.

    Example:
        >>> st = StyleTransfer("cpu")
        >>> style = st.encode_style("stylekit/examples/renoir_the_wave_1879_aic81557.jpg", size=256)
        >>> style.mean.shape
        torch.Size([1, 512, 1, 1])
    """

    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        for name, t in (("mean", self.mean), ("std", self.std)):
            if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[2:] != (1, 1):
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ShapeError(f"Style.{name} must be a (B, C, 1, 1) tensor, got {shape}")
        if self.mean.shape != self.std.shape:
            raise ShapeError(f"Style.mean {tuple(self.mean.shape)} and std {tuple(self.std.shape)} differ")

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def to(self, device: str | torch.device) -> Style:
        """The same statistics on another device."""
        return Style(self.mean.to(device), self.std.to(device))


class StyleTransfer:
    """An AdaIN model on one device, with its compute dtype, ready to stylise images.

    Args:
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``
            or a ``torch.device``.
        dtype: ``"auto"`` (bf16 on CUDA and on CPUs with fast bf16, else fp32), ``"fp32"``,
            ``"bf16"``, ``"fp16"`` or a torch dtype; used through autocast.
        model: use this model instead of the shipped one (it is moved to ``device``, put in
            eval mode and frozen, in place). By default the shared cached model of
            :func:`get_model` is used.

    Raises:
        ArgumentError: unknown or unavailable device or dtype.
        WeightsError: the shipped weights are missing or corrupted (only when ``model`` is None).

    Example:
        >>> st = StyleTransfer(device="cpu")
        >>> wave = st.encode_style("stylekit/examples/renoir_the_wave_1879_aic81557.jpg", size=256)
        >>> out = st("stylekit/examples/chelsea_cat.jpg", wave, alpha=0.8, size=128)
        >>> min(out.size)
        128
    """

    def __init__(
        self,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = "auto",
        *,
        model: AdaINModel | None = None,
    ) -> None:
        self.device = _canonical(resolve_device(device))
        self.dtype = resolve_dtype(self.device, dtype)
        if model is None:
            model = get_model(self.device, self.dtype)
        elif not isinstance(model, AdaINModel):
            raise ArgumentError(f"model must be an AdaINModel or None, got {type(model).__name__}")
        else:
            model = _prepare(model, self.device)
        self.model = model

    def __repr__(self) -> str:
        return f"StyleTransfer(device={str(self.device)!r}, dtype={str(self.dtype).replace('torch.', '')!r})"

    def encode_style(self, style: ImageLike, *, size: int | None = None) -> Style:
        """Encode a style image once, to apply it to many content images.

        Args:
            style: path, PIL image, numpy array or tensor (see :func:`stylekit.load_image`).
                A (B, 3, H, W) tensor gives B styles, to pair with a batch of B contents.
            size: resize the style first so its short side is ``size`` pixels. By default a
                style whose short side exceeds :data:`STYLE_SIZE` (512) is scaled down to it,
                as the AdaIN reference does: the look then does not depend on the scan's resolution.

        Returns:
            A :class:`Style` on this object's device.

        Example:
            >>> st = StyleTransfer("cpu")
            >>> st.encode_style(torch.rand(3, 64, 64)).std.dtype
            torch.float32
        """
        size = check_size_arg(size)
        return self._encode(read_image(style, name="style"), size)

    def _encode(self, style: ImageInput, size: int | None, cap: int = STYLE_SIZE) -> Style:
        x = style.tensor
        if size is None and min(x.shape[-2:]) > cap:
            size = cap  # big paintings are seen at (at most) 512 px, as in the AdaIN reference
        if size is not None:
            x = resize_short_side(x, size)
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device, self.dtype):
            mean, std = self.model.style_stats(x)
        # clone outside inference mode: plain tensors that users may keep and use anywhere
        return Style(mean.float().clone(), std.float().clone())

    def __call__(
        self, content: ImageLike, style: ImageLike | Style, alpha: float = 1.0, *, size: int | None = None
    ) -> ImageOut:
        """Stylise ``content`` with ``style``; the result comes back in the type of ``content``.

        Args:
            content: path (result: ``PIL.Image``), ``PIL.Image`` (result: ``PIL.Image``),
                H x W x 3 / H x W numpy array (result: H x W x 3 array of the same dtype) or
                (3, H, W) / (B, 3, H, W) float tensor in [0, 1] (result: same rank, dtype, device).
            style: an image of any of those kinds, or a :class:`Style` from :meth:`encode_style`.
            alpha: style strength, from 0 (the content reconstructed) to 1 (full style).
            size: resize content and style so their short side is ``size`` pixels; the result
                then has the resized content's size. ``None`` keeps the content's size exactly,
                and scales a style image down (never up) to the content's short side, at most
                :data:`STYLE_SIZE` (512). Ignored for the style if it is already a :class:`Style`.

        Raises:
            ArgumentError: bad ``alpha`` or ``size``.
            ImageError, ShapeError: a bad image.

        Example:
            >>> st = StyleTransfer("cpu")
            >>> wave = st.encode_style("stylekit/examples/renoir_the_wave_1879_aic81557.jpg", size=256)
            >>> out = st(np.zeros((37, 53, 3), np.uint8), wave)
            >>> out.shape, out.dtype
            ((37, 53, 3), dtype('uint8'))
        """
        alpha = _check_alpha(alpha)
        size = check_size_arg(size)
        inp = read_image(content, name="content")
        sty = style if isinstance(style, Style) else read_image(style, name="style")
        return self._run(inp, sty, alpha, size)

    def _run(self, content: ImageInput, style: ImageInput | Style, alpha: float, size: int | None) -> ImageOut:
        x = content.tensor if size is None else resize_short_side(content.tensor, size)
        if not isinstance(style, Style):
            # a style larger than the content is seen at the content's scale (at most STYLE_SIZE)
            style = self._encode(style, size, cap=min(STYLE_SIZE, max(min(x.shape[-2:]), 64)))
        if style.mean.shape[0] not in (1, x.shape[0]):
            raise ShapeError(f"style batch {style.mean.shape[0]} must be 1 or match content batch {x.shape[0]}")
        x = x.to(self.device)
        x, pads = pad_to_multiple(x, 8)  # the encoder pools 3 times before relu4_1
        x = x.contiguous(memory_format=torch.channels_last)
        style_stats = (style.mean.to(self.device), style.std.to(self.device))
        with torch.inference_mode(), autocast(self.device, self.dtype):
            y = self.model.stylize(x, style_stats, alpha)
        # outside inference mode, so tensor results are ordinary tensors (in-place ops allowed)
        y = crop_padding(y, pads).float().clamp(0.0, 1.0).contiguous()
        return content.to_output(y)


def transfer(
    content: ImageLike,
    style: ImageLike | Style,
    alpha: float = 1.0,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = "auto",
    size: int | None = None,
) -> ImageOut:
    """Stylise ``content`` with ``style`` using the shipped AdaIN model (built once, then cached).

    The result has the type of ``content`` (a path gives a ``PIL.Image``) and exactly its
    size, unless ``size`` is given: then content and style are first resized so their short
    side is ``size`` pixels and the result has the resized content's size.

    Args:
        content: path, ``PIL.Image``, numpy array (H x W x 3 or H x W, uint8 or float in [0, 1])
            or float tensor (3, H, W) / (B, 3, H, W) in [0, 1].
        style: an image of any of those kinds, or a :class:`Style`.
        alpha: style strength in [0, 1].
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``, ...
        dtype: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        size: short side in pixels (int >= 16) to resize to first, or ``None``.

    Raises:
        ArgumentError: bad ``alpha``, ``size``, ``device`` or ``dtype``.
        ImageError, ShapeError: a bad image.
        WeightsError: the shipped weights are missing or corrupted.

    Example:
        >>> from stylekit import transfer, save_image
        >>> out = transfer("stylekit/examples/chelsea_cat.jpg",
        ...                "stylekit/examples/renoir_the_wave_1879_aic81557.jpg", alpha=0.8, size=128)
        >>> out.mode, min(out.size)
        ('RGB', 128)
    """
    # check every argument before the (slow, first time) model build
    alpha = _check_alpha(alpha)
    size = check_size_arg(size)
    dev = _canonical(resolve_device(device))
    dt = resolve_dtype(dev, dtype)
    inp = read_image(content, name="content")
    sty = style if isinstance(style, Style) else read_image(style, name="style")
    return StyleTransfer(dev, dt)._run(inp, sty, alpha, size)
