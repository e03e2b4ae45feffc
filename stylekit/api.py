"""The high-level API: :func:`transfer` for one call, :class:`StyleTransfer` to keep a model and reuse styles."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Union, overload

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .color import PreserveColor
from .device import resolve_device, resolve_dtype
from .errors import ArgumentError
from .gatys import Init
from .image import Encoded, ImageInput, ImageLike, check_size_arg, read_image, resize_short_side
from .masks import MaskLike
from .model import AdaINModel, compute_model
from .pipeline import METHODS, STYLE_SIZE, Job, Options, Runner, StyleCache, check_options, plan
from .style import Style

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "Style", "StyleTransfer", "transfer", "get_model", "clear_model_cache", "set_style_cache_size",
    "clear_style_cache", "METHODS", "STYLE_SIZE",
]  # fmt: skip

ImageOut = Union[Image.Image, np.ndarray, Tensor]
Method = Literal["adain", "wct", "gatys"]
Contents = Union[ImageLike, Sequence[ImageLike]]
Styles = Union[ImageLike, Style, Sequence[Union[ImageLike, Style]]]
PathOrPIL = Union[str, os.PathLike, Encoded, Image.Image]
"""The inputs whose result is a ``PIL.Image``: a path, an encoded file (bytes or a binary file object), a PIL image."""


class CallOptions(TypedDict, total=False):
    """The keyword options of :meth:`StyleTransfer.__call__` (described at :func:`transfer`),
    for type checkers: with them the result's type follows the content's."""

    size: int | None
    max_size: int | None
    style_weights: Sequence[float] | None
    masks: Sequence[MaskLike] | None
    preserve_color: PreserveColor | None
    method: Method
    tile: int | Literal["auto"] | None
    steps: int
    init: Init
    progress: bool
    callback: Callable[[int, Tensor], Any] | None


class TransferOptions(CallOptions, total=False):
    """The keyword options of :func:`transfer`: those of :class:`CallOptions`, a device and a dtype."""

    device: str | torch.device
    dtype: str | torch.dtype | None

_MODELS: dict[tuple[torch.device, torch.dtype], AdaINModel] = {}
_MODELS_LOCK = threading.Lock()
STYLE_CACHE_SIZE = 8
"""Default number of encoded styles a :class:`StyleTransfer` (and :func:`transfer`) remembers."""
_SHARED_STYLES = StyleCache(STYLE_CACHE_SIZE)  # the styles of transfer() calls


def _build_model(device: torch.device) -> AdaINModel:
    """The shipped model, ready for inference on ``device``."""
    return _prepare(AdaINModel.from_pretrained(), device)


def _prepare(model: AdaINModel, device: torch.device) -> AdaINModel:
    model = model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack this form
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

    Thread-safe. The weights stay in float32; ``dtype`` is the autocast dtype used with it
    (for bf16/fp16 the calls run a copy whose weights were cast once: see
    :func:`stylekit.model.compute_model`).

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
    """Forget the models built by :func:`get_model` (frees their memory once unused), and the
    styles :func:`transfer` remembered."""
    with _MODELS_LOCK:
        _MODELS.clear()
    _SHARED_STYLES.clear()


def set_style_cache_size(size: int) -> None:
    """How many encoded styles :func:`transfer` remembers (default 8; ``0`` turns the cache off).

    A style image passed again (the same pixels, resized to the same size, for the same method's
    statistics, device, dtype and model weights) is then not encoded again: its statistics come
    from the cache, bit for bit those of a new encoding. Each entry is 4 KB (1 MB for WCT).
    Thread-safe. Each :class:`StyleTransfer` has its own cache (its ``style_cache`` argument).

    Raises:
        ArgumentError: ``size`` is not an int >= 0.

    Example:
        >>> set_style_cache_size(0); set_style_cache_size(STYLE_CACHE_SIZE)
    """
    _SHARED_STYLES.resize(size)


def clear_style_cache() -> None:
    """Forget the styles :func:`transfer` remembered (see :func:`set_style_cache_size`)."""
    _SHARED_STYLES.clear()


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, Real):
        raise ArgumentError(f"alpha must be a real number in [0, 1], got {alpha!r} ({type(alpha).__name__})")
    value = float(alpha)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ArgumentError(f"alpha must be in [0, 1], got {alpha!r}")
    return value


def _read(content: Contents, style: Styles) -> tuple[list[ImageInput], list[ImageInput | Style], bool]:
    listed = isinstance(content, (list, tuple))
    if isinstance(content, (list, tuple)):  # (again: a bool does not narrow the type for mypy)
        if not content:
            raise ArgumentError("content is an empty list")
        items = [read_image(c, name=f"content[{i}]") for i, c in enumerate(content)]
    else:
        items = [read_image(content, name="content")]  # type: ignore[arg-type]  # another Sequence: read_image names it
    many = isinstance(style, (list, tuple))
    styles: list[ImageLike | Style] = list(style) if isinstance(style, (list, tuple)) else [style]  # type: ignore[list-item]  # as above
    if not styles:
        raise ArgumentError("style is an empty list")
    entries = [
        s if isinstance(s, Style) else read_image(s, name=f"style[{i}]" if many else "style")
        for i, s in enumerate(styles)
    ]
    return items, entries, listed


class StyleTransfer:
    """An AdaIN model on one device, with its compute dtype, ready to stylise images.

    Args:
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``
            or a ``torch.device``.
        dtype: ``"auto"`` (bf16 on CUDA, fp16 on GPUs without bf16, bf16 on CPUs with fast bf16,
            else fp32), ``"fp32"``,
            ``"bf16"``, ``"fp16"`` or a torch dtype; used through autocast.
        model: use this model instead of the shipped one (it is moved to ``device``, put in
            eval mode and frozen, in place). By default the shared cached model of
            :func:`get_model` is used.
        style_cache: how many encoded styles this object remembers (default 8, least recently
            used out; ``0``: none). A style image passed again as an image (the same pixels,
            resized to the same size, for the same method's statistics) is then not encoded
            again; its statistics are bit for bit those of a new encoding. Keys are a SHA-256
            of the pixels, so an image changed in place is a new style. Styles recoloured by
            ``preserve_color="histogram"``, tensors on a GPU and :meth:`encode_style` bypass it.

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
        style_cache: int = STYLE_CACHE_SIZE,
    ) -> None:
        self._styles = StyleCache(style_cache)  # checks the size first
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

    def encode_style(self, style: ImageLike, *, size: int | None = None, method: Literal["adain", "wct"] = "adain") -> Style:
        """Encode a style image once, to apply it to many content images.

        Args:
            style: path, encoded bytes or file object, PIL image, numpy array or tensor (see :func:`stylekit.load_image`).
                A (B, 3, H, W) tensor gives B styles, to pair with a batch of B contents.
            size: resize the style first so its short side is ``size`` pixels. By default a
                style whose short side exceeds :data:`STYLE_SIZE` (512) is scaled down to it,
                as the AdaIN reference does: the look then does not depend on the scan's resolution.
            method: ``"wct"`` also keeps the 512 x 512 channel covariance, which ``method="wct"``
                needs (``"gatys"`` and ``preserve_color="histogram"`` need the image itself).

        Returns:
            A :class:`Style` on this object's device.

        Example:
            >>> st = StyleTransfer("cpu")
            >>> st.encode_style(torch.rand(3, 64, 64)).std.dtype
            torch.float32
            >>> st.encode_style(torch.rand(3, 64, 64), method="wct").cov.shape
            torch.Size([1, 512, 512])
        """
        size = check_size_arg(size)
        if method not in ("adain", "wct"):
            raise ArgumentError(f"method must be 'adain' or 'wct' to encode a style, got {method!r}")
        x = read_image(style, name="style").tensor
        if size is None and min(x.shape[-2:]) > STYLE_SIZE:
            size = STYLE_SIZE  # big paintings are seen at (at most) 512 px, as in the AdaIN reference
        if size is not None:
            x = resize_short_side(x, size)
        return self._runner(None).encode(x, cov=method == "wct")

    # The result's type follows the content's: these overloads tell type checkers so.
    @overload
    def __call__(self, content: PathOrPIL, style: Styles, alpha: float = ..., **options: Unpack[CallOptions]) -> Image.Image: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, content: np.ndarray, style: Styles, alpha: float = ..., **options: Unpack[CallOptions]) -> np.ndarray: ...
    @overload
    def __call__(self, content: Tensor, style: Styles, alpha: float = ..., **options: Unpack[CallOptions]) -> Tensor: ...
    @overload
    def __call__(self, content: Sequence[PathOrPIL], style: Styles, alpha: float = ..., **options: Unpack[CallOptions]) -> list[Image.Image]: ...
    @overload
    def __call__(self, content: Sequence[np.ndarray], style: Styles, alpha: float = ..., **options: Unpack[CallOptions]) -> list[np.ndarray]: ...
    @overload
    def __call__(self, content: Sequence[Tensor], style: Styles, alpha: float = ..., **options: Unpack[CallOptions]) -> list[Tensor]: ...
    @overload
    def __call__(self, content: Sequence[ImageLike], style: Styles, alpha: float = ..., **options: Unpack[CallOptions]) -> list[ImageOut]: ...

    def __call__(
        self,
        content: Contents,
        style: Styles,
        alpha: float = 1.0,
        *,
        size: int | None = None,
        max_size: int | None = None,
        style_weights: Sequence[float] | None = None,
        masks: Sequence[MaskLike] | None = None,
        preserve_color: PreserveColor | None = None,
        method: Method = "adain",
        tile: int | Literal["auto"] | None = None,
        steps: int = 200,
        init: Init = "content",
        progress: bool = True,
        callback: Callable[[int, Tensor], Any] | None = None,
    ) -> ImageOut | list[Any]:
        """Stylise ``content`` with ``style``; the result comes back in the type of ``content``.

        Every option is described at :func:`transfer`.

        Args:
            content: an image (path, bytes or file object, PIL, numpy, tensor) or a list of them.
            style: an image or :class:`Style`, or a list of them.
            alpha: style strength in [0, 1].
            size: short side to resize the contents to first.
            max_size: cap of the contents' long side (downscale only).
            style_weights: mixing weights of several styles.
            masks: one region mask per style.
            preserve_color: ``None``, ``"luminance"`` or ``"histogram"``.
            method: ``"adain"``, ``"wct"`` or ``"gatys"``.
            tile: tile size, ``"auto"`` or None.
            steps: optimisation steps (``"gatys"``).
            init: ``"content"``, ``"adain"`` or ``"noise"`` (``"gatys"``).
            progress: show a progress bar (``"gatys"`` steps; tiles).
            callback: ``callback(step, image)`` after each step (``"gatys"``).

        Returns:
            The result in the type of ``content`` (a list for a list).

        Raises:
            ArgumentError: a bad option (the message names it).
            ImageError, ShapeError: a bad image or mask.

        Example:
            >>> st = StyleTransfer("cpu")
            >>> wave = st.encode_style("stylekit/examples/renoir_the_wave_1879_aic81557.jpg", size=256)
            >>> out = st(np.zeros((37, 53, 3), np.uint8), wave)
            >>> out.shape, out.dtype
            ((37, 53, 3), dtype('uint8'))
            >>> cat = "stylekit/examples/chelsea_cat.jpg"
            >>> gauguin = "stylekit/examples/gauguin_why_are_you_angry_1896_aic19339.jpg"
            >>> mixed = st(cat, [wave, gauguin], size=64, style_weights=[0.3, 0.7], preserve_color="luminance")
            >>> mixed.size
            (96, 64)
        """
        o = check_options(
            alpha=_check_alpha(alpha), size=size, max_size=max_size, style_weights=style_weights, masks=masks,
            preserve_color=preserve_color, method=method, tile=tile, steps=steps, init=init, progress=progress,
            callback=callback,
        )  # fmt: skip
        items, entries, listed = _read(content, style)
        return self._run(plan(items, entries, o, listed=listed), o, listed)

    def _runner(self, styles: StyleCache | None) -> Runner:
        """A runner on the model with its weights in the compute dtype (cast once, not per call)."""
        c = compute_model(self.model, self.dtype)
        return Runner(c.model, self.device, self.dtype, styles=styles, scope=(id(self.model), c.generation))

    def _run(self, job: Job, o: Options, listed: bool, styles: StyleCache | None = None) -> Any:
        results = self._runner(self._styles if styles is None else styles).run(job, o, listed)
        outs = [it.to_output(y) for it, y in zip(job.items, results)]
        return outs if listed else outs[0]


# The result's type follows the content's: these overloads tell type checkers so.
@overload
def transfer(content: PathOrPIL, style: Styles, alpha: float = ..., **options: Unpack[TransferOptions]) -> Image.Image: ...  # type: ignore[overload-overlap]
@overload
def transfer(content: np.ndarray, style: Styles, alpha: float = ..., **options: Unpack[TransferOptions]) -> np.ndarray: ...
@overload
def transfer(content: Tensor, style: Styles, alpha: float = ..., **options: Unpack[TransferOptions]) -> Tensor: ...
@overload
def transfer(content: Sequence[PathOrPIL], style: Styles, alpha: float = ..., **options: Unpack[TransferOptions]) -> list[Image.Image]: ...
@overload
def transfer(content: Sequence[np.ndarray], style: Styles, alpha: float = ..., **options: Unpack[TransferOptions]) -> list[np.ndarray]: ...
@overload
def transfer(content: Sequence[Tensor], style: Styles, alpha: float = ..., **options: Unpack[TransferOptions]) -> list[Tensor]: ...
@overload
def transfer(content: Sequence[ImageLike], style: Styles, alpha: float = ..., **options: Unpack[TransferOptions]) -> list[ImageOut]: ...


def transfer(
    content: Contents,
    style: Styles,
    alpha: float = 1.0,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = "auto",
    size: int | None = None,
    max_size: int | None = None,
    style_weights: Sequence[float] | None = None,
    masks: Sequence[MaskLike] | None = None,
    preserve_color: PreserveColor | None = None,
    method: Method = "adain",
    tile: int | Literal["auto"] | None = None,
    steps: int = 200,
    init: Init = "content",
    progress: bool = True,
    callback: Callable[[int, Tensor], Any] | None = None,
) -> ImageOut | list[Any]:
    """Stylise ``content`` with ``style`` using the shipped AdaIN model (built once, then cached).

    The result has the type of ``content`` (a path gives a ``PIL.Image``) and exactly its
    size, unless ``size`` or ``max_size`` is given: then the content is first resized. Every
    option works with every other one, except that ``method="gatys"`` takes no ``tile`` or ``masks``
    and ``style_weights`` does not go with ``masks`` (each style then paints its own region).
    The last 8 style images are remembered encoded, so passing the same style again skips its
    encoding (bit for bit the same result; see :func:`set_style_cache_size`).

    Args:
        content: path, encoded image file (``bytes`` or a binary file object such as
            ``open(p, "rb")`` or ``io.BytesIO``) or ``PIL.Image`` (result: ``PIL.Image``), H x W x 3
            / H x W numpy array (result: H x W x 3 array of the same dtype), (3, H, W) /
            (B, 3, H, W) float tensor in [0, 1] (result: same rank, dtype, device), or a list
            of those (result: a list, each in its input's type; equal-sized ones run as one batch).
        style: an image of any of those kinds or a :class:`Style`; or a list of them: mixed
            (``style_weights``) or one per region (``masks``), or, with as many styles as
            contents (list items or batch rows, at least two) and neither option, one per content.
        alpha: style strength, from 0 (the content reconstructed) to 1 (full style).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``, ...
        dtype: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        size: resize contents (and styles) so their short side is ``size`` pixels first; the
            result then has the resized content's size. ``None`` keeps the content's size,
            and scales a style image down (never up) to the content's short side (but not below
            64 px), at most :data:`STYLE_SIZE` (512). Ignored for a style that is already a :class:`Style`.
        max_size: then scale the content down (never up) so its long side is at most this.
        style_weights: with several styles (and no ``masks``): their mixing weights, any
            non-negative numbers (normalised to sum to 1); default equal. The AdaIN targets
            ``t_k = AdaIN(f_c, s_k)`` are interpolated, ``t = sum_k w_k t_k`` (for AdaIN the
            same as interpolating the style means and stds; for WCT the WCT outputs).
        masks: with one or more styles: one mask per style (path, PIL image, array or tensor,
            grayscale, any size, values 0..1 or 0..255): each region gets its own style, with
            the content statistics of that region; overlaps are normalised, and where no mask
            covers the content features stay (see :mod:`stylekit.masks`).
        preserve_color: ``None``, ``"luminance"`` (keep the content's chroma: the output's Y
            with the content's I and Q) or ``"histogram"`` (match each style image's RGB
            mean and covariance to the content's before stylising); see :mod:`stylekit.color`.
        method: ``"adain"`` (default), ``"wct"`` (whitening and colouring transform, same
            decoder) or ``"gatys"`` (optimisation of the pixels; slow; see :mod:`stylekit.gatys`).
        tile: ``None``, an int >= 256 or ``"auto"``: stylise big pictures in overlapping tiles
            of that size with the whole picture's statistics (``"auto"``: tiles of 1024 px
            above 4 megapixels); see :mod:`stylekit.tiling`. Not with ``"gatys"``.
        steps: ``"gatys"`` only: optimisation steps.
        init: ``"gatys"`` only: start from ``"content"``, ``"adain"`` (the AdaIN result) or ``"noise"``.
        progress: show a progress bar for long work: the steps of ``"gatys"``, and the tiles
            of a tiled picture (two passes each).
        callback: ``"gatys"`` only: called as ``callback(step, image)`` after each step with
            the current (B, 3, H, W) float tensor.

    Returns:
        The result in the type of ``content``, or a list of results for a list of contents.

    Raises:
        ArgumentError: a bad option (the message names it), checked before the model is built.
        ImageError, ShapeError: a bad image or mask.
        WeightsError: the shipped weights are missing or corrupted.

    Example:
        >>> from stylekit import transfer, save_image
        >>> cat = "stylekit/examples/chelsea_cat.jpg"
        >>> wave = "stylekit/examples/renoir_the_wave_1879_aic81557.jpg"
        >>> out = transfer(cat, wave, alpha=0.8, size=128)
        >>> out.mode, min(out.size)
        ('RGB', 128)
        >>> outs = transfer([cat, cat], wave, size=64, method="wct", preserve_color="histogram")
        >>> len(outs)
        2
    """
    # check every argument before the (slow, first time) model build
    o = check_options(
        alpha=_check_alpha(alpha), size=size, max_size=max_size, style_weights=style_weights, masks=masks,
        preserve_color=preserve_color, method=method, tile=tile, steps=steps, init=init, progress=progress,
        callback=callback,
    )  # fmt: skip
    dev = _canonical(resolve_device(device))
    dt = resolve_dtype(dev, dtype)
    items, entries, listed = _read(content, style)
    job = plan(items, entries, o, listed=listed)  # style weights, masks: also before the build
    return StyleTransfer(dev, dt, style_cache=0)._run(job, o, listed, _SHARED_STYLES)


