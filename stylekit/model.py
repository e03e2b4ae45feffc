"""The one encoder + AdaIN + decoder module, shared by :func:`stylekit.transfer` and training."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .decoder import Decoder
from .encoder import STYLE_TAPS, VGGEncoder
from .errors import ArgumentError
from .ops import adain, mean_std

__all__ = ["AdaINModel", "ModelOutput"]


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
