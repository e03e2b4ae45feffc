"""The AdaIN training objective: content loss at relu4_1 and mean/std style loss at four taps.

Our VGG-19 is the un-normalised Caffe model, whose activations grow with depth. Each tap is
therefore divided by its mean activation over natural photos (measured on the training
content images, 0–255 BGR input), which puts every layer on the same footing — what the
reference implementation's "vgg_normalised" achieves.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .encoder import STYLE_TAPS, VGGEncoder
from .ops import mean_std

__all__ = ["TAP_SCALE", "content_loss", "style_loss", "AdaINLoss"]

TAP_SCALE: dict[str, float] = {"relu1_1": 19.8, "relu2_1": 105.5, "relu3_1": 108.7, "relu4_1": 436.1}


def content_loss(g_feat: Tensor, target: Tensor, scale: float = TAP_SCALE["relu4_1"]) -> Tensor:
    """MSE between the output's relu4_1 features and the AdaIN target, in normalised units."""
    return F.mse_loss(g_feat.float() / scale, target.float() / scale)


def style_loss(
    g_feats: Mapping[str, Tensor], s_feats: Mapping[str, Tensor], taps=STYLE_TAPS, scales=TAP_SCALE
) -> Tensor:
    """Sum over taps of MSE(mean) + MSE(std) between output and style features (normalised)."""
    total = torch.zeros((), device=next(iter(g_feats.values())).device)
    for tap in taps:
        gm, gs = mean_std(g_feats[tap])
        sm, ss = mean_std(s_feats[tap])
        if sm.shape[0] != gm.shape[0]:
            sm, ss = sm.expand_as(gm), ss.expand_as(gs)
        k = scales[tap]
        total = total + F.mse_loss(gm / k, sm / k) + F.mse_loss(gs / k, ss / k)
    return total


class AdaINLoss(torch.nn.Module):
    """``content + style_weight * style`` for a batch of outputs. Returns (total, content, style)."""

    def __init__(self, encoder: VGGEncoder, style_weight: float = 10.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.style_weight = style_weight

    def forward(self, image: Tensor, target: Tensor, style_feats: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        g = self.encoder(image, STYLE_TAPS)
        lc = content_loss(g["relu4_1"], target)
        ls = style_loss(g, style_feats)
        return lc + self.style_weight * ls, lc, ls
