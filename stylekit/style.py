"""A style reduced to what the feature transforms need, and the weights that mix several styles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import ArgumentError, ShapeError

try:  # torch.compile's tensors without data
    from torch._subclasses.fake_tensor import FakeTensor as _FakeTensor
except ImportError:  # pragma: no cover
    _FakeTensor = None  # type: ignore[assignment,misc]

__all__ = ["Style", "check_style_weights"]


@dataclass(frozen=True, eq=False)
class Style:
    """A style image reduced to what the feature transforms need: relu4_1 channel statistics.

    Made by :meth:`stylekit.StyleTransfer.encode_style`; small (2 x 512 numbers per image, plus
    a 512 x 512 covariance when encoded for WCT), so one style can be applied to many pictures
    without encoding it again.

    Attributes:
        mean: (B, 512, 1, 1) float32, B = 1 for a single style image.
        std: (B, 512, 1, 1) float32.
        cov: (B, 512, 512) float32 channel covariance (biased), or None: needed by ``method="wct"``.

    Example:
        >>> style = Style(torch.zeros(1, 512, 1, 1), torch.ones(1, 512, 1, 1))
        >>> style.mean.shape, style.cov is None
        (torch.Size([1, 512, 1, 1]), True)
    """

    mean: Tensor
    std: Tensor
    cov: Tensor | None = None

    def __post_init__(self) -> None:
        for name, t in (("mean", self.mean), ("std", self.std)):
            if not isinstance(t, Tensor) or t.is_nested or t.dim() != 4 or t.shape[2:] != (1, 1):
                shape = type(t).__name__ if not isinstance(t, Tensor) else "a nested tensor" if t.is_nested else tuple(t.shape)
                raise ShapeError(f"Style.{name} must be a (B, C, 1, 1) tensor, got {shape}")
        if self.mean.shape != self.std.shape:
            raise ShapeError(f"Style.mean {tuple(self.mean.shape)} and std {tuple(self.std.shape)} differ")
        maps: tuple[tuple[str, Tensor | None], ...] = (("mean", self.mean), ("std", self.std), ("cov", self.cov))
        for name, m in maps:
            if isinstance(m, Tensor) and _problem(m) is None and not torch.isfinite(m).all():
                raise ShapeError(f"Style.{name} holds NaN or Inf")  # (tensors with no real data: see check())
        b, c = self.mean.shape[:2]
        if self.cov is not None and (not isinstance(self.cov, Tensor) or tuple(self.cov.shape) != (b, c, c)):
            shape = tuple(self.cov.shape) if isinstance(self.cov, Tensor) else type(self.cov).__name__
            raise ShapeError(f"Style.cov must be a ({b}, {c}, {c}) tensor, got {shape}")

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def check(self, name: str = "style") -> Style:
        """This Style, if its tensors hold real numbers; else a :class:`~stylekit.errors.ShapeError`
        naming ``name``. Refused: tensors on the ``meta`` device or fake tensors (shapes but no
        data), sparse, nested or quantized tensors, and dtypes other than real floating point.
        Called wherever a Style is used (:func:`stylekit.transfer`, :class:`stylekit.video.FrameStylizer`,
        :meth:`to`).

        Example:
            >>> Style(torch.zeros(1, 512, 1, 1, device="meta"), torch.ones(1, 512, 1, 1, device="meta")).check()
            Traceback (most recent call last):
            ...
            stylekit.errors.ShapeError: style.mean is on the 'meta' device, which has shapes but no data; compute it on a real device (encode_style)
        """
        for part, t in (("mean", self.mean), ("std", self.std), ("cov", self.cov)):
            problem = None if t is None else _problem(t)
            if problem is not None:
                raise ShapeError(f"{name}.{part} {problem}")
        return self

    def to(self, device: str | torch.device) -> Style:
        """The same statistics on another device."""
        self.check("Style")
        cov = None if self.cov is None else self.cov.to(device)
        return Style(self.mean.to(device), self.std.to(device), cov)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(mean, std, cov)`` for :class:`stylekit.targets.Target`."""
        return self.mean, self.std, self.cov


def _problem(t: Tensor) -> str | None:
    """Why ``t`` cannot serve as style statistics, or None."""
    if t.is_nested:
        return "is a nested tensor; pass a dense one"
    if t.layout != torch.strided:
        return f"is a {str(t.layout).replace('torch.', '')} tensor; pass a dense one (.to_dense())"
    if t.is_meta:
        return "is on the 'meta' device, which has shapes but no data; compute it on a real device (encode_style)"
    if _FakeTensor is not None and isinstance(t, _FakeTensor):
        return "is a fake tensor, which has shapes but no data; compute it on a real device (encode_style)"
    if t.is_quantized or t.is_complex() or not t.is_floating_point():
        return f"has dtype {t.dtype}; style statistics are real floating point (float32)"
    return None


def check_style_weights(weights: Any, count: int) -> Tensor:
    """Validate ``style_weights`` for ``count`` styles; returns them normalised to sum to 1 (float32).

    None gives equal weights. Raises :class:`~stylekit.errors.ArgumentError` naming ``style_weights``
    for a wrong length, a negative, NaN or infinite weight, or weights summing to 0.

    Example:
        >>> check_style_weights([1, 3], 2).tolist()
        [0.25, 0.75]
    """
    if weights is None:
        return torch.full((count,), 1.0 / count)
    if isinstance(weights, Tensor):
        weights = weights.detach().cpu().flatten().tolist()
    elif isinstance(weights, np.ndarray):
        weights = weights.ravel().tolist()
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise ArgumentError(f"style_weights must be a list of {count} numbers, got {type(weights).__name__}")
    if len(weights) != count:
        raise ArgumentError(f"style_weights has {len(weights)} entries but there are {count} styles")
    values = []
    for w in weights:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, Real):
            raise ArgumentError(f"style_weights must hold real numbers, got {w!r}")
        v = float(w)
        if not math.isfinite(v) or v < 0:
            raise ArgumentError(f"style_weights must be finite and >= 0, got {w!r}")
        values.append(v)
    total = sum(values)
    if total <= 0:
        raise ArgumentError(f"style_weights must not all be 0, got {list(weights)!r}")
    return torch.tensor([v / total for v in values], dtype=torch.float32)
