"""How one call of :func:`stylekit.transfer` runs, whatever its options.

1. contents are resized (``size``, then ``max_size``); equal-sized ones are stacked into one batch;
2. styles are resized to the content's scale, recoloured to each content's colours for
   ``preserve_color="histogram"``, and encoded (with their covariance for WCT);
3. the relu4_1 target (:class:`~stylekit.targets.Target`: style weights or region masks) is
   decoded whole or tile by tile (:mod:`stylekit.tiling`), or the pixels are optimised (Gatys);
4. ``preserve_color="luminance"`` gives the result the content's chroma.

Memory: before anything is stylised, every pass that would run without tiles is checked
against :func:`stylekit.memory.untiled_limit`; a picture over it is refused
with an :class:`~stylekit.errors.ImageError` that points at ``tile="auto"``, and rows of a
batch are stylised in as many passes as the limit needs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from .color import check_preserve_color, keep_luminance, match_color
from .device import autocast
from .errors import ArgumentError, ImageError, ShapeError
from .gatys import STYLE_WEIGHT, check_init, check_steps, gatys
from .image import MIN_SIDE, ImageInput, check_size_arg, crop_padding, pad_to_multiple, resize_short_side
from .masks import read_masks, resize_masks
from .memory import TILE_ADVICE, check_style_memory, too_large_error, untiled_limit
from .model import AdaINModel
from .ops import mean_std
from .style import Style, check_style_weights
from .targets import Target
from .tiling import check_tile, resolve_tile, stylize_tiled
from .wct import mean_cov

__all__ = ["METHODS", "STYLE_SIZE", "Options", "check_options", "Job", "plan", "fit_size", "StyleCache", "Runner",
           "untiled_passes"]

METHODS: tuple[str, ...] = ("adain", "wct", "gatys")
STYLE_SIZE = 512
"""Default short side of style images (larger ones are scaled down to it)."""

@dataclass(frozen=True)
class Options:
    """The checked keyword options of one call (style weights and masks are checked by :func:`plan`)."""

    alpha: float = 1.0
    size: int | None = None
    max_size: int | None = None
    style_weights: Any = None
    masks: Any = None
    preserve_color: str | None = None
    method: str = "adain"
    tile: int | str | None = None
    steps: int = 200
    init: str = "content"
    progress: bool = True
    callback: Callable[[int, Tensor], Any] | None = None


def check_options(**kw: Any) -> Options:
    """Validate every option that does not depend on the images (before a model is built)."""
    o = Options(**kw)
    if not (isinstance(o.method, str) and o.method in METHODS):
        raise ArgumentError(f"method must be one of {', '.join(map(repr, METHODS))}, got {o.method!r}")
    if o.callback is not None and not callable(o.callback):
        raise ArgumentError(f"callback must be callable(step, image) or None, got {type(o.callback).__name__}")
    if not isinstance(o.progress, bool):
        raise ArgumentError(f"progress must be True or False, got {o.progress!r}")
    o = Options(
        **{**kw, "size": check_size_arg(o.size), "max_size": check_size_arg(o.max_size, "max_size"),
           "preserve_color": check_preserve_color(o.preserve_color), "tile": check_tile(o.tile),
           "steps": check_steps(o.steps), "init": check_init(o.init)}
    )  # fmt: skip
    if o.method == "gatys" and o.tile is not None:
        raise ArgumentError("tile cannot be used with method='gatys' (the optimisation needs the whole picture)")
    if o.method == "gatys" and o.masks is not None:
        raise ArgumentError("masks are not supported with method='gatys'; use method='adain' or 'wct'")
    if o.style_weights is not None and o.masks is not None:
        raise ArgumentError("style_weights and masks do not go together: with masks each style paints its own region")
    return o


def fit_size(x: Tensor, size: int | None, max_size: int | None) -> Tensor:
    """Resize (B, 3, H, W) so the short side is ``size`` (if given), then scale it down so the
    long side is at most ``max_size`` (if given; never up). Antialiased bilinear.

    Example:
        >>> fit_size(torch.rand(1, 3, 40, 100), None, 50).shape
        torch.Size([1, 3, 20, 50])
    """
    if size is not None:
        x = resize_short_side(x, size)
    h, w = x.shape[-2:]
    if max_size is not None and max(h, w) > max_size:
        scale = max_size / max(h, w)
        nh, nw = round(h * scale), round(w * scale)
        if min(nh, nw) < MIN_SIDE:
            raise ArgumentError(f"max_size={max_size} would make a {nw}x{nh} image, under {MIN_SIDE} px")
        x = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return x


@dataclass
class Job:
    """A call's images, sorted out: ``rows[i]`` is the style entry of every content row in pair mode."""

    items: list[ImageInput]
    entries: list[ImageInput | Style]
    pair: bool
    weights: Tensor | None
    masks: list[Tensor] | None


def plan(items: list[ImageInput], entries: list[ImageInput | Style], o: Options, *, listed: bool) -> Job:
    """Decide pairing (one style per content) vs mixing, and check what needs the style count.

    Several styles pair with the contents (style i for content i) when the call has as many
    styles as content pictures (list items, or rows of a batch tensor), at least two, and
    neither ``style_weights`` nor ``masks``; otherwise the styles are mixed for every content.
    """
    n = len(items) if listed else items[0].tensor.shape[0]
    pair = len(entries) > 1 and len(entries) == n and o.style_weights is None and o.masks is None
    weights = None if pair else check_style_weights(o.style_weights, len(entries))
    masks = None if o.masks is None else read_masks(o.masks, len(entries))
    for i, e in enumerate(entries):
        if not isinstance(e, Style):
            continue
        where = "style" if len(entries) == 1 else f"style[{i}]"
        e.check(where)  # meta, fake, sparse, non-float tensors: a ShapeError before the model is built
        if o.preserve_color == "histogram":
            raise ArgumentError(f"preserve_color='histogram' recolours the style image: {where} must be an image, not a Style")
        if o.method == "gatys":
            raise ArgumentError(f"method='gatys' needs the style image: {where} must be an image, not a Style")
        if o.method == "wct" and e.cov is None:
            raise ArgumentError(f"method='wct' needs the style covariance: encode {where} with encode_style(..., method='wct')")
    return Job(items, entries, pair, weights, masks)


class StyleCache:
    """The last ``size`` encoded styles (least recently used out), so a style image passed again is
    not encoded again. Thread-safe; ``size=0`` keeps nothing.

    A key (see :meth:`Runner.style_key`) holds the SHA-256 of the style image's float32 pixels
    with its shape, the size it is resized to, whether the covariance is kept, and the model,
    weights version, device and dtype that encode it: an equal key means an equal encoding.

    Example:
        >>> cache = StyleCache(2)
        >>> cache.put("a", 1); cache.put("b", 2); cache.get("a"); cache.put("c", 3)
        1
        >>> cache.get("b") is None, len(cache)
        (True, 2)
    """

    def __init__(self, size: int = 8) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ArgumentError(f"style_cache (the number of styles to remember) must be an int >= 0, got {size!r}")
        self.size = size
        self._items: OrderedDict[Hashable, Style] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Style | None:
        with self._lock:
            style = self._items.get(key)
            if style is not None:
                self._items.move_to_end(key)
            return style

    def put(self, key: Hashable, style: Style) -> None:
        with self._lock:
            if self.size == 0:
                return
            self._items[key] = style
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def resize(self, size: int) -> None:
        """Keep at most ``size`` styles from now on (0: none)."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ArgumentError(f"style_cache (the number of styles to remember) must be an int >= 0, got {size!r}")
        with self._lock:
            self.size = size
            while len(self._items) > size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def untiled_passes(groups: list[list[int]], rows: list[Tensor], xs: list[Tensor], o: Options, listed: bool,
                   device: torch.device) -> list[list[int]]:  # fmt: skip
    """Split groups of equal-sized content rows into the passes the memory rule allows, checking
    every group before anything runs (so a call fails fast, not after its first pictures).

    A pass holds ``rows x pixels`` within :func:`untiled_limit`, where ``pixels`` is the padded
    picture (untiled) or one tile (tiled). Without ``tile`` (and always for Gatys, which cannot
    tile and optimises its group as one batch), a pass that cannot fit raises
    :class:`~stylekit.errors.ImageError` pointing at ``tile="auto"``; with ``tile`` (an int or
    ``"auto"``) nothing is refused: the user chose the tile, whose memory is bounded by its size.
    """
    limit, why = untiled_limit(device)
    if limit is None:
        return groups
    starts, n = [], 0
    for x in xs:
        starts.append(n)
        n += x.shape[0]
    passes = []
    for idx in groups:
        h, w = rows[idx[0]].shape[-2:]
        hp, wp = -(-h // 8) * 8, -(-w // 8) * 8  # as pad_to_multiple(x, 8)
        tile = None if o.method == "gatys" else resolve_tile(o.tile, hp, wp)
        per_row = hp * wp if tile is None else min(hp, tile) * min(wp, tile)
        together = len(idx) if o.method == "gatys" else 1  # the rows that cannot be split
        if o.tile is None and together * per_row > limit:
            i = max(k for k, s in enumerate(starts) if s <= idx[0])
            name = f"content[{i}]" if listed else "content"
            if xs[i].shape[0] > 1:
                name += f" (row {idx[0] - starts[i]} of its batch)"
            if together > 1:
                name += f" with {together - 1} more of its size, optimised together"
            advice = ("method='gatys' cannot tile: pass max_size= (or a smaller size=) to scale it down (--max-size N, --size N)"
                      if o.method == "gatys" else TILE_ADVICE)  # fmt: skip
            size = f"{w}x{h} px" + (f" x {together} pictures" if together > 1 else "")
            raise too_large_error(name, "stylise", size, together * per_row, limit, why, advice)
        step = len(idx) if o.method == "gatys" else max(1, limit // per_row)
        passes += [idx[a : a + step] for a in range(0, len(idx), step)]
    return passes


class Runner:
    """Runs a :class:`Job` with one model on one device and compute dtype.

    With ``styles``, encoded style images are looked up in (and added to) that cache; ``scope``
    names the model and weights version (see :func:`stylekit.model.compute_model`) in its keys.
    """

    def __init__(
        self, model: AdaINModel, device: torch.device, dtype: torch.dtype,
        *, styles: StyleCache | None = None, scope: Hashable = None,
    ) -> None:  # fmt: skip
        self.model, self.device, self.dtype = model, device, dtype
        self.styles = styles if styles is not None and styles.size > 0 else None
        self.scope = scope

    def style_key(self, s: Tensor, size: int | None, cov: bool) -> Hashable | None:
        """The cache key of style images ``s`` (B, 3, h, w) resized to short side ``size`` (None:
        as they are); None when there is no cache or ``s`` is not in host memory (hashing it would
        need a copy from the accelerator)."""
        if self.styles is None or s.device.type != "cpu":
            return None
        pixels = s.detach().contiguous()
        digest = hashlib.sha256(pixels.numpy().data.cast("B")).digest()  # releases the GIL
        return (self.scope, self.device, self.dtype, cov, size, str(pixels.dtype), tuple(pixels.shape), digest)

    def encode(self, x: Tensor, cov: bool = False) -> Style:
        """Encode ready-sized style images (B, 3, h, w) to a :class:`Style` (on this device)."""
        check_style_memory(x, self.device)
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device, self.dtype):
            f = self.model.encoder.encode(x)
            mean, std = mean_std(f)
            c = mean_cov(f)[1].float() if cov else None
        # clone outside inference mode: plain tensors that users may keep and use anywhere
        return Style(mean.float().clone(), std.float().clone(), None if c is None else c.clone())

    def run(self, job: Job, o: Options, listed: bool) -> list[Tensor]:
        """The result of every item, (B_i, 3, H_i, W_i) float32 in [0, 1] on this device."""
        xs = []
        for i, it in enumerate(job.items):
            try:
                xs.append(fit_size(it.tensor, o.size, o.max_size))
            except ArgumentError as e:  # this picture's shape with that size: an error of the picture
                h, w = it.tensor.shape[-2:]
                raise ImageError(f"{f'content[{i}]' if listed else 'content'} ({w}x{h} px): {e}") from None
        rows, row_entry = [], []  # every content row, with its style entry in pair mode
        for i, x in enumerate(xs):
            for j in range(x.shape[0]):
                rows.append(x[j : j + 1])
                row_entry.append(i if listed else j)
        groups: dict[tuple[int, ...], list[int]] = {}
        for r, x in enumerate(rows):
            key = tuple(x.shape[-2:]) if not (o.method == "gatys" and job.pair) else (r,)
            groups.setdefault(key, []).append(r)
        out: list[Tensor | None] = [None] * len(rows)
        for idx in untiled_passes(list(groups.values()), rows, xs, o, listed, self.device):  # all checked first
            x = (rows[idx[0]] if len(idx) == 1 else torch.cat([rows[r] for r in idx])).to(self.device)
            comps = [[row_entry[r] for r in idx]] if job.pair else [[k] * len(idx) for k in range(len(job.entries))]
            y = self._group(x, comps, job, o)
            for n, r in enumerate(idx):
                out[r] = y[n : n + 1]
        results: list[Tensor] = []
        start = 0
        for x in xs:
            part = cast(list[Tensor], out[start : start + x.shape[0]])  # every row was filled
            results.append(part[0] if len(part) == 1 else torch.cat(part))
            start += x.shape[0]
        return results

    @staticmethod
    def _style_size(s: Tensor, x: Tensor, o: Options) -> int | None:
        """The short side style images ``s`` are resized to for the contents ``x`` (None: kept)."""
        if o.size is not None:
            return o.size
        cap = min(STYLE_SIZE, max(min(x.shape[-2:]), 64))  # a big style is seen at the content's scale
        return cap if min(s.shape[-2:]) > cap else None

    def _style_images(self, comp: list[int], job: Job, x: Tensor, o: Options) -> list[Tensor | None]:
        """The style images of one component: one shared, or one per content row (None for a Style)."""
        recolour = o.preserve_color == "histogram"
        out: list[Tensor | None] = []
        for r, e in enumerate(comp if (recolour or len(set(comp)) > 1) else comp[:1]):
            entry = job.entries[e]
            if isinstance(entry, Style):
                out.append(None)
                continue
            s = entry.tensor
            size = self._style_size(s, x, o)
            if size is not None:
                s = resize_short_side(s, size)
            s = s.to(self.device)
            if recolour:
                if s.shape[0] not in (1, x.shape[0]):
                    raise ShapeError(f"style batch {s.shape[0]} must be 1 or match content batch {x.shape[0]}")
                s = match_color(s if s.shape[0] == 1 else s[r : r + 1], x[r : r + 1])
            out.append(s)
        return out

    def _style(self, comp: list[int], job: Job, x: Tensor, o: Options) -> Style:
        """One component's statistics, batch 1 (shared) or the group's batch (one per row)."""
        wct = o.method == "wct"
        first = job.entries[comp[0]]
        if len(set(comp)) == 1 and isinstance(first, Style):
            st = first
        else:
            if self.styles is not None and o.preserve_color != "histogram":  # recoloured: per content, not cached
                parts = [self._cached_style(job.entries[e], x, o, wct) for e in (comp if len(set(comp)) > 1 else comp[:1])]
            else:
                parts = []
                for e, img in zip(comp, self._style_images(comp, job, x, o)):
                    parts.append(self.encode(img, wct) if img is not None else cast(Style, job.entries[e]))
            covs = [p.cov for p in parts]
            st = Style(
                torch.cat([p.mean.to(self.device) for p in parts]), torch.cat([p.std.to(self.device) for p in parts]),
                None if any(c is None for c in covs) else torch.cat([c.to(self.device) for c in covs]),  # type: ignore[union-attr]
            )
        if st.mean.shape[0] not in (1, x.shape[0]):
            raise ShapeError(f"style batch {st.mean.shape[0]} must be 1 or match content batch {x.shape[0]}")
        return st.to(self.device)

    def _cached_style(self, entry: ImageInput | Style, x: Tensor, o: Options, cov: bool) -> Style:
        """``entry`` encoded for the contents ``x``, from :attr:`styles` when it was encoded before.

        The cached :class:`Style` is only read (``torch.cat`` copies it into the call's own)."""
        if isinstance(entry, Style):
            return entry
        s = entry.tensor
        size = self._style_size(s, x, o)
        key = self.style_key(s, size, cov)
        hit = None if key is None else self.styles.get(key)  # type: ignore[union-attr]
        if hit is not None:
            return hit
        img = (s if size is None else resize_short_side(s, size)).to(self.device)
        style = self.encode(img, cov)
        if key is not None:
            self.styles.put(key, style)  # type: ignore[union-attr]
        return style

    def _group(self, x: Tensor, comps: list[list[int]], job: Job, o: Options) -> Tensor:
        if o.method == "gatys":
            return self._gatys(x, comps, job, o)
        styles = [self._style(c, job, x, o) for c in comps]
        return self._decode(x, styles, job, o, o.method)

    def _decode(self, x: Tensor, styles: list[Style], job: Job, o: Options, method: str) -> Tensor:
        xp, pads = pad_to_multiple(x, 8)  # the encoder pools 3 times before relu4_1
        grid = (xp.shape[-2] // 8, xp.shape[-1] // 8)
        masks = None if job.masks is None else resize_masks(job.masks, grid).to(self.device)
        target = Target(method, [s.tensors() for s in styles], weights=job.weights, masks=masks)  # type: ignore[arg-type]
        tile = resolve_tile(o.tile, *xp.shape[-2:])
        luminance = o.preserve_color == "luminance"
        with torch.inference_mode(), autocast(self.device, self.dtype):
            if tile is None:
                xp = xp.contiguous(memory_format=torch.channels_last)
                y = self.model.stylize_with(xp, target, o.alpha).float().clamp(0.0, 1.0)
            else:
                post = keep_luminance if luminance else None
                y = stylize_tiled(self.model, xp, target, o.alpha, tile, post=post, progress=o.progress)
        # outside inference mode, so tensor results are ordinary tensors (in-place ops allowed)
        y = crop_padding(y, pads).float().clamp(0.0, 1.0).contiguous()
        if luminance and tile is None:
            y = keep_luminance(y, x)
        return y

    def _gatys(self, x: Tensor, comps: list[list[int]], job: Job, o: Options) -> Tensor:
        imgs = [torch.cat(cast(list[Tensor], self._style_images(c, job, x, o))) for c in comps]  # gatys has no Style entries
        init_image = None
        if o.init == "adain":
            init_image = self._decode(x, [self.encode(s) for s in imgs], job, o, "adain")
        res = gatys(
            self.model.encoder, x.float(), imgs, style_weights=job.weights, steps=o.steps, init=o.init,  # type: ignore[arg-type]
            init_image=init_image, style_weight=STYLE_WEIGHT * o.alpha, progress=o.progress,
            callback=o.callback, dtype=self.dtype,
        )  # fmt: skip
        y = res.image
        return keep_luminance(y, x) if o.preserve_color == "luminance" else y.clamp(0.0, 1.0)
