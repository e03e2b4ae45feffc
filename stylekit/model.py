"""The one encoder + AdaIN + decoder module, shared by :func:`stylekit.transfer` and training."""

from __future__ import annotations

import copy
import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .decoder import Decoder
from .encoder import STYLE_TAPS, VGGEncoder
from .errors import ArgumentError
from .ops import adain, mean_std

__all__ = ["AdaINModel", "ModelOutput", "Compute", "compute_model"]


@dataclass
class ModelOutput:
    """What :meth:`AdaINModel.forward` returns when the training loop asks for the features."""

    image: Tensor  # decoded image (B, 3, H, W), unclamped
    target: Tensor  # t = AdaIN(f(c), f(s)) blended with alpha: the content target at relu4_1
    style_feats: dict[str, Tensor]  # f(s) at every style tap


class AdaINModel(nn.Module):
    """Frozen VGG-19 encoder, AdaIN and a decoder: ``decoder(alpha*AdaIN(f(c), f(s)) + (1-alpha)*f(c))``.

    Example:
        >>> model = AdaINModel.from_pretrained()
        >>> c, s = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
        >>> model(c, s, alpha=0.5).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, encoder: VGGEncoder | None = None, decoder: Decoder | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else VGGEncoder.from_pretrained()
        self.decoder = decoder if decoder is not None else Decoder()

    @classmethod
    def from_pretrained(cls) -> AdaINModel:
        """Shipped encoder and decoder."""
        return cls(VGGEncoder.from_pretrained(), Decoder.from_pretrained())

    def style_stats(self, style: Tensor) -> tuple[Tensor, Tensor]:
        """The (mean, std) of a style image at relu4_1 — all AdaIN needs of the style."""
        return mean_std(self.encoder.encode(style))

    def stylize(self, content: Tensor, style_stats: tuple[Tensor, Tensor], alpha: float | Tensor = 1.0) -> Tensor:
        """Decode the content with precomputed style statistics (see :meth:`style_stats`)."""
        return self.stylize_with(content, lambda f_c: adain(f_c, style_stats), alpha)

    def stylize_with(self, content: Tensor, transform: Callable[[Tensor], Tensor], alpha: float | Tensor = 1.0) -> Tensor:
        """``decoder(alpha * transform(f(c)) + (1 - alpha) * f(c))``: the hook for other targets.

        ``transform`` maps relu4_1 content features (B, 512, h, w) to the target features of the
        same shape (AdaIN, WCT, a mix of styles, a blend of regions, ...).
        """
        f_c = self.encoder.encode(content)
        return self.decoder(self._blend(f_c, transform(f_c), alpha))

    @staticmethod
    def _blend(f_c: Tensor, t: Tensor, alpha: float | Tensor) -> Tensor:
        if isinstance(alpha, (int, float)):
            if not 0.0 <= alpha <= 1.0:
                raise ArgumentError(f"alpha must be in [0, 1], got {alpha}")
            if alpha == 1.0:
                return t
            if alpha == 0.0:
                return f_c
        return torch.lerp(f_c, t, alpha if isinstance(alpha, Tensor) else float(alpha))

    def forward(
        self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0, *, return_features: bool = False
    ) -> Tensor | ModelOutput:
        """Stylise ``content`` (B, 3, H, W) with ``style`` (B or 1, 3, h, w), both RGB in [0, 1].

        With ``return_features=True`` (training) also returns the AdaIN target and the style
        features at every style tap, for the losses.
        """
        if not return_features:
            return self.stylize(content, self.style_stats(style), alpha)
        f_s = self.encoder(style, STYLE_TAPS)
        f_c = self.encoder.encode(content)
        t = self._blend(f_c, adain(f_c, f_s["relu4_1"]), alpha)
        return ModelOutput(self.decoder(t), t, f_s)


@dataclass(frozen=True)
class Compute:
    """What :func:`compute_model` returns: the module to run, and the version of its weights."""

    model: AdaINModel  # the model itself (float32) or a copy whose parameters are in the compute dtype
    generation: int  # unique to this (model, dtype, weights) state; changes whenever the weights do


@dataclass
class _Entry:
    parts: tuple[object, ...]  # the model's submodules, parameters and buffers (kept, so no id is reused)
    stamps: tuple[tuple[int, int], ...]  # (data_ptr, version) of each parameter and buffer
    copy: AdaINModel | None  # None for float32: the model itself runs (no reference to it is kept here)
    generation: int


_COMPUTE: weakref.WeakKeyDictionary[AdaINModel, dict[torch.dtype, _Entry]] = weakref.WeakKeyDictionary()
_COMPUTE_LOCK = threading.Lock()
_GENERATIONS = itertools.count(1)


def _state(model: AdaINModel) -> tuple[tuple[object, ...], tuple[tuple[int, int], ...]] | None:
    """The model's submodules (not itself) and tensors, with their storage and version; None
    when a tensor was made in inference mode (it has no version counter to watch)."""
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.is_inference() for t in tensors):
        return None
    stamps = tuple((t.data_ptr(), t._version) for t in tensors)
    return (*list(model.modules())[1:], *tensors), stamps


def _same(entry: _Entry, parts: tuple[object, ...], stamps: tuple[tuple[int, int], ...]) -> bool:
    return (
        entry.stamps == stamps
        and len(entry.parts) == len(parts)
        and all(a is b for a, b in zip(entry.parts, parts))
    )


def compute_model(model: AdaINModel, dtype: torch.dtype) -> Compute:
    """``model`` for inference under ``autocast(dtype)``, with its parameters already in ``dtype``.

    Autocast casts float32 weights to bf16/fp16 for every convolution of every call (its cast
    cache only keeps weights that require grad); inference therefore runs a copy whose
    parameters were cast once, the same way (round to nearest), so the results are bit for bit
    those of the float32 model under autocast. Buffers (the encoder's input mean) stay float32,
    and the statistics of :mod:`stylekit.ops` are computed in float32 as before. For float32
    the model itself is returned. ``model`` is never changed.

    One copy per (model, dtype), built on first use and rebuilt when any submodule, parameter or
    buffer of ``model`` is replaced or modified in place (e.g. trained further, moved,
    reloaded); dropped with the model. Thread-safe. The copy is for inference only (frozen, eval).
    A model whose tensors were made in inference mode (no version counter to watch) is run as
    it is, with a new ``generation`` every time.

    Example:
        >>> m = AdaINModel.from_pretrained()
        >>> c = compute_model(m, torch.bfloat16)
        >>> c.model.decoder.net[1].weight.dtype, m.decoder.net[1].weight.dtype
        (torch.bfloat16, torch.float32)
        >>> compute_model(m, torch.bfloat16).model is c.model  # cast once
        True
        >>> compute_model(m, torch.float32).model is m
        True
    """
    state = _state(model)
    if state is None:  # changes cannot be detected: no copy, and a new generation every time
        return Compute(model, next(_GENERATIONS))
    parts, stamps = state
    with _COMPUTE_LOCK:
        per_dtype = _COMPUTE.setdefault(model, {})
        entry = per_dtype.get(dtype)
        if entry is None or not _same(entry, parts, stamps):
            entry = per_dtype[dtype] = _Entry(parts, stamps, _cast_copy(model, dtype), next(_GENERATIONS))
    return Compute(model if entry.copy is None else entry.copy, entry.generation)


def _cast_copy(model: AdaINModel, dtype: torch.dtype) -> AdaINModel | None:
    if dtype == torch.float32:
        return None
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors: Gatys takes gradients through them
        memo: dict[int, object] = {
            id(p): nn.Parameter(p.detach().to(dtype) if p.is_floating_point() else p.detach().clone(), requires_grad=False)
            for p in model.parameters()
        }  # memory_format is preserved (channels_last stays channels_last)
        out = copy.deepcopy(model, memo)
    out.eval()
    return out
