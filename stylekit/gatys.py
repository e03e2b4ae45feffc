"""Optimisation-based style transfer (Gatys, Ecker & Bethge, "Image Style Transfer Using
Convolutional Neural Networks", CVPR 2016), with stylekit's VGG-19 encoder.

The pixels of the result are optimised with Adam to minimise

    content_weight * MSE(conv4_2(x), conv4_2(c))
    + style_weight * sum over relu1_1..relu5_1 of ||G(x) - sum_k w_k G(s_k)||^2
    + tv_weight * total variation(x)

where G is the Gram matrix ``F F^T / (C H W)``. Every tap is first divided by its typical
activation (:data:`SCALE`: :data:`stylekit.losses.TAP_SCALE`, plus conv4_2 and relu5_1 measured
the same way), so the layers weigh alike. Slow (hundreds of encoder passes with gradients) but
needs no decoder and gives the reference look.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .device import autocast
from .encoder import VGGEncoder
from .errors import ArgumentError, ShapeError
from .losses import TAP_SCALE

__all__ = ["CONTENT_TAP", "STYLE_TAPS", "SCALE", "INITS", "STYLE_WEIGHT", "gram", "check_init", "check_steps", "GatysResult", "gatys"]

CONTENT_TAP = "conv4_2"
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# conv4_2 (mean |x|) and relu5_1: measured on the example photos at 256 px like TAP_SCALE, and
# rescaled so that relu4_1 of the same photos matches TAP_SCALE["relu4_1"].
SCALE: dict[str, float] = {**TAP_SCALE, "conv4_2": 980.0, "relu5_1": 43.6}
INITS: tuple[str, ...] = ("content", "adain", "noise")
STYLE_WEIGHT = 1.0
"""Default weight of the style loss (the content loss weighs 1)."""
Init = Literal["content", "adain", "noise"]


def check_init(init: Any) -> Init:
    """Validate ``init``: ``"content"``, ``"adain"`` or ``"noise"``."""
    if isinstance(init, str) and init in INITS:
        return init  # type: ignore[return-value]
    raise ArgumentError(f"init must be one of {', '.join(map(repr, INITS))}, got {init!r}")


def check_steps(steps: Any) -> int:
    """Validate ``steps``: an int >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
        raise ArgumentError(f"steps must be an int >= 1, got {steps!r}")
    return int(steps)


def gram(feat: Tensor, scale: float = 1.0) -> Tensor:
    """Gram matrix ``F F^T / (C H W) / scale^2`` of (B, C, H, W) features, in float32: (B, C, C).

    Example:
        >>> gram(torch.ones(1, 2, 3, 3)).tolist()
        [[[0.5, 0.5], [0.5, 0.5]]]
    """
    b, c, h, w = feat.shape
    f = feat.float().flatten(2) / scale
    return f @ f.transpose(1, 2) / (c * h * w)


def _gram_loss(g: Tensor, target: Tensor) -> Tensor:
    """Sum of squared differences over the Gram entries (Gatys' E_l up to 1/4), mean over the batch."""
    return (g - target).pow(2).sum((1, 2)).mean()


def _tv(x: Tensor) -> Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


@dataclass
class GatysResult:
    """The optimised images (B, 3, H, W) in [0, 1] and the loss before each step."""

    image: Tensor
    losses: list[float] = field(default_factory=list)


def gatys(
    encoder: VGGEncoder,
    content: Tensor,
    styles: Sequence[Tensor],
    *,
    style_weights: Sequence[float] | Tensor | None = None,
    steps: int = 200,
    init: Init = "content",
    init_image: Tensor | None = None,
    content_weight: float = 1.0,
    style_weight: float = STYLE_WEIGHT,
    tv_weight: float = 30.0,
    lr: float = 0.02,
    progress: bool = True,
    callback: Callable[[int, Tensor], Any] | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> GatysResult:
    """Optimise the pixels of an image to have the content of ``content`` and the style of ``styles``.

    Args:
        encoder: the VGG-19 encoder (frozen).
        content: (B, 3, H, W) RGB in [0, 1].
        styles: K style images, each (B or 1, 3, h, w) in [0, 1].
        style_weights: K weights summing to 1 that mix the styles' Gram matrices (default: equal).
        steps: Adam steps.
        init: start from the content, from ``init_image`` (``"adain"``: the caller's AdaIN result)
            or from uniform noise (seeded by ``seed``).
        init_image: the start image for ``init="adain"``, shaped like ``content``.
        content_weight, style_weight, tv_weight: the loss weights.
        lr: Adam learning rate (pixels are in [0, 1] and clamped to it after every step).
        progress: show a tqdm progress bar.
        callback: called as ``callback(step, image)`` after every step (1..steps) with a copy
            of the current (B, 3, H, W) image.
        dtype: autocast dtype of the encoder passes (the losses are float32).

    Returns:
        A :class:`GatysResult`.

    Example:
        >>> enc = VGGEncoder.from_pretrained()
        >>> res = gatys(enc, torch.rand(1, 3, 32, 32), [torch.rand(1, 3, 32, 32)], steps=2, progress=False)
        >>> res.image.shape, len(res.losses)
        (torch.Size([1, 3, 32, 32]), 2)
    """
    init = check_init(init)
    steps = check_steps(steps)
    if not styles:
        raise ArgumentError("styles must hold at least one style image")
    weights = torch.full((len(styles),), 1.0 / len(styles)) if style_weights is None else torch.as_tensor(style_weights)
    if weights.shape != (len(styles),):
        raise ArgumentError(f"style_weights must have {len(styles)} entries, got {tuple(weights.shape)}")
    dev = content.device
    taps = (CONTENT_TAP, *STYLE_TAPS)

    with torch.no_grad(), autocast(dev, dtype):
        c_target = encoder(content, (CONTENT_TAP,))[CONTENT_TAP].float() / SCALE[CONTENT_TAP]
        s_targets: dict[str, Tensor] = {}
        for w, s in zip(weights.tolist(), styles):
            feats = encoder(s.to(dev), STYLE_TAPS)
            for tap in STYLE_TAPS:
                g = w * gram(feats[tap], SCALE[tap])
                s_targets[tap] = s_targets[tap] + g if tap in s_targets else g

    if init == "adain":
        if init_image is None or init_image.shape != content.shape:
            raise ShapeError("init='adain' needs init_image shaped like the content")
        start = init_image
    elif init == "noise":
        start = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed)).to(dev)
    else:
        start = content
    x = start.detach().float().clone().clamp_(0.0, 1.0).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    losses: list[float] = []
    with torch.enable_grad(), tqdm(total=steps, desc="gatys", disable=not progress, leave=False) as bar:
        for step in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            with autocast(dev, dtype):
                feats = encoder(x, taps)
            lc = F.mse_loss(feats[CONTENT_TAP].float() / SCALE[CONTENT_TAP], c_target)
            ls = sum(_gram_loss(gram(feats[t], SCALE[t]), s_targets[t]) for t in STYLE_TAPS)
            loss = content_weight * lc + style_weight * ls + tv_weight * _tv(x)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ArithmeticError(f"the Gatys loss became {value} at step {step}; lower lr or the weights")
            losses.append(value)
            bar.set_postfix(loss=f"{value:.4g}")
            bar.update()
            if callback is not None:
                callback(step, x.detach().clone())
    return GatysResult(x.detach(), losses)
