"""The frozen VGG-19 encoder (ImageNet weights of Simonyan & Zisserman) with named taps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
from torch import Tensor, nn

from .errors import ArgumentError, ShapeError, WeightsError
from .padding import reflect_pad, relu_pad
from .weights import ENCODER

__all__ = ["VGGEncoder", "TAPS", "STYLE_TAPS", "CONV_SHAPES"]

# (name, in_channels, out_channels) of every conv up to conv5_1, in order; "pool" marks max-pooling.
_PLAN: list[tuple[str, int, int] | str] = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), "pool",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512), "pool",
    ("conv5_1", 512, 512),
]  # fmt: skip
CONV_SHAPES = {p[0]: (p[2], p[1], 3, 3) for p in _PLAN if isinstance(p, tuple)}

# Tap names in network order: "convX_Y" (before ReLU) and "reluX_Y" (after).
TAPS: tuple[str, ...] = tuple(
    t for p in _PLAN if isinstance(p, tuple) for t in (p[0], "relu" + p[0][4:])
)
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")

# ImageNet mean of the original Caffe model, as RGB in [0, 1].
_MEAN_RGB = (123.68 / 255, 116.779 / 255, 103.939 / 255)


class VGGEncoder(nn.Module):
    """VGG-19 convolutions up to relu5_1, frozen, with named feature taps.

    Input is RGB in [0, 1], shape (B, 3, H, W). The Caffe model's BGR / 0–255 / mean
    subtraction is folded into ``conv1_1`` (its weights are channel-flipped and scaled by
    255 at load time), so only the mean is subtracted at run time. Max pooling.

    ``padding="reflect"`` (the default, as in the AdaIN reference implementation) mirrors the
    image at the borders; ``padding="zeros"`` is the original Caffe model's padding (a border of
    ImageNet-mean grey). Zero padding makes the deep features near the edges differ from the
    inside, which a decoder learns to paint as a dark frame; reflection avoids that.

    Example:
        >>> enc = VGGEncoder.from_pretrained()
        >>> feats = enc(torch.rand(1, 3, 64, 64), taps=("relu1_1", "relu4_1"))
        >>> feats["relu4_1"].shape
        torch.Size([1, 512, 8, 8])
    """

    mean: Tensor  # the ImageNet mean in RGB, a buffer

    def __init__(self, padding: str = "reflect") -> None:
        super().__init__()
        if padding not in ("reflect", "zeros"):
            raise ArgumentError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
        self.padding = padding
        self.register_buffer("mean", torch.tensor(_MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.convs = nn.ModuleDict(
            {p[0]: nn.Conv2d(p[1], p[2], 3, padding=int(padding == "zeros")) for p in _PLAN if isinstance(p, tuple)}
        )
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_pretrained(cls, padding: str = "reflect") -> VGGEncoder:
        """The shipped ImageNet VGG-19 (sha256-checked, dequantised losslessly from uint8 codes)."""
        tensors, _ = ENCODER.load()
        enc = cls(padding)
        enc.load_quantized(tensors)
        return enc

    def load_quantized(self, tensors: dict[str, Tensor]) -> None:
        """Load ``<conv>.codes`` (uint8), ``<conv>.table`` (256 float32) and ``<conv>.bias``."""
        expected = {f"{n}.{k}" for n in CONV_SHAPES for k in ("codes", "table", "bias")}
        if set(tensors) != expected:
            missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
            raise WeightsError(f"encoder weights do not fit: missing {missing}, unexpected {extra}")
        with torch.no_grad():
            for name, shape in CONV_SHAPES.items():
                codes, table = tensors[f"{name}.codes"], tensors[f"{name}.table"]
                if tuple(codes.shape) != shape or codes.dtype != torch.uint8 or table.numel() != 256:
                    raise WeightsError(f"encoder weights for {name} have the wrong shape or dtype")
                w = table.float()[codes.long()]
                if name == "conv1_1":  # fold BGR order and the 0–255 scale into the first conv
                    w = w[:, [2, 1, 0]] * 255.0
                conv = cast(nn.Conv2d, self.convs[name])
                conv.weight.copy_(w)
                cast(Tensor, conv.bias).copy_(tensors[f"{name}.bias"].float())

    def forward(self, x: Tensor, taps: Iterable[str] = STYLE_TAPS) -> dict[str, Tensor]:
        """Run the network as far as the deepest requested tap.

        Args:
            x: RGB images in [0, 1], (B, 3, H, W).
            taps: names from :data:`TAPS`, e.g. ``("relu1_1", "relu4_1", "conv4_2")``, or one name.

        Returns:
            A dict from tap name to feature map.
        """
        wanted = {taps} if isinstance(taps, str) else set(taps)
        if not wanted:
            raise ArgumentError(f"taps must name at least one layer of {TAPS}")
        unknown = wanted - set(TAPS)
        if unknown:
            raise ArgumentError(f"unknown encoder taps {sorted(unknown)}; known: {TAPS}")
        last = max(TAPS.index(t) for t in wanted)
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"encoder input must be RGB images (B, 3, H, W), got {shape}")
        need = 2 ** (int(TAPS[last][4]) - 1)  # a tap of block k sits behind k-1 poolings
        if min(x.shape[-2:]) < need:
            raise ShapeError(f"tap {TAPS[last]} needs images of at least {need}x{need} px, got {tuple(x.shape[-2:])}")
        out: dict[str, Tensor] = {}
        x = x - self.mean.to(x.dtype)
        reflect = self.padding == "reflect"
        relu_due = False  # x is a conv output whose ReLU is still to come, folded into what follows
        seen = 0
        for k, p in enumerate(_PLAN):
            if p == "pool":  # relu(max_pool(x)) = max_pool(relu(x)), on a quarter of the pixels
                x = nn.functional.max_pool2d(x, 2, 2)
                x = torch.relu_(x) if relu_due else x
                relu_due = False
                continue
            name, relu = p[0], "relu" + p[0][4:]
            if relu_due:  # reflection padding with the ReLU written into it: one pass, not two
                x = relu_pad(x)
            elif reflect:
                x = reflect_pad(x)
            x = self.convs[name](x)
            if name in wanted:
                out[name] = x
            seen += 2
            if relu in wanted or not (reflect or seen > last or _PLAN[k + 1] == "pool"):
                # in place unless the pre-ReLU map is a tap (a convolution's gradient needs its
                # input, not its output)
                x = torch.relu(x) if name in wanted else torch.relu_(x)
                if relu in wanted:
                    out[relu] = x
            else:
                relu_due = True  # (or nothing follows: the last tap is this pre-ReLU map)
            if seen > last:
                break
        return out

    def encode(self, x: Tensor, tap: str = "relu4_1") -> Tensor:
        """Features at a single tap. ``enc.encode(x)`` is relu4_1."""
        return self(x, (tap,))[tap]


