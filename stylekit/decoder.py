"""The trainable decoder: the mirror of VGG-19 from relu4_1 back to RGB (Huang & Belongie, 2017)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import ShapeError, WeightsError
from .padding import ReflectPad, relu_pad
from .weights import DECODER, load_file

__all__ = ["Decoder"]

# (in, out) channels of each 3x3 conv; "up" is a nearest-neighbour 2x upsampling.
_PLAN: list[tuple[int, int] | str] = [
    (512, 256), "up",
    (256, 256), (256, 256), (256, 256), (256, 128), "up",
    (128, 128), (128, 64), "up",
    (64, 64), (64, 3),
]  # fmt: skip


class Decoder(nn.Module):
    """Maps relu4_1 features (B, 512, h, w) to RGB images (B, 3, 8h, 8w), roughly in [0, 1].

    Reflection padding, nearest-neighbour upsampling and a ReLU after every conv but the
    last, as in the AdaIN paper. The output is not clamped (training needs the gradient);
    :func:`stylekit.transfer` clamps it.

    Example:
        >>> dec = Decoder()
        >>> dec(torch.randn(1, 512, 5, 7)).shape
        torch.Size([1, 3, 40, 56])
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        convs = [p for p in _PLAN if p != "up"]
        for p in _PLAN:
            if isinstance(p, str):  # "up"
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            layers += [ReflectPad(), nn.Conv2d(p[0], p[1], 3)]
            if p is not convs[-1]:
                layers.append(nn.ReLU(inplace=True))  # a convolution's gradient needs its input, not its output
        self.net = nn.Sequential(*layers)
        self.meta: dict[str, str] = {}

    def forward(self, t: Tensor) -> Tensor:
        if t.dim() != 4 or t.shape[1] != 512:
            raise ShapeError(f"decoder input must be (B, 512, h, w) relu4_1 features, got {tuple(t.shape)}")
        if min(t.shape[-2:]) < 2:  # reflection padding needs 2 pixels (images of 16 px and up)
            raise ShapeError(f"decoder input must be at least 2x2 (images of 16 px), got {tuple(t.shape[-2:])}")
        layers = list(self.net)
        k = 0
        while k < len(layers):
            if isinstance(layers[k], nn.ReLU) and k + 1 < len(layers) and isinstance(layers[k + 1], ReflectPad):
                t, k = relu_pad(t), k + 2  # the ReLU written into the padded map: one pass, not two
            else:
                t, k = layers[k](t), k + 1
        return t

    @classmethod
    def from_pretrained(cls) -> Decoder:
        """The decoder that ships with stylekit (sha256-checked).

        Example:
            >>> dec = Decoder.from_pretrained()
            >>> int(dec.meta["step"]) > 0
            True
        """
        tensors, meta = DECODER.load()
        return cls._from_tensors(tensors, meta, str(DECODER.path))

    @classmethod
    def from_file(cls, path: str | Path, *, sha256: str | None = None) -> Decoder:
        """A decoder exported by :func:`stylekit.train.train` / :meth:`save` (keys, shapes, dtypes validated)."""
        tensors, meta = load_file(path, sha256=sha256)
        return cls._from_tensors(tensors, meta, str(path))

    @classmethod
    def _from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, str], where: str) -> Decoder:
        dec = cls()
        own = dec.state_dict()
        if set(tensors) != set(own):
            missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
            raise WeightsError(f"{where} is not a stylekit decoder: missing {missing[:4]}, unexpected {extra[:4]}")
        for k, v in tensors.items():
            if v.shape != own[k].shape:
                raise WeightsError(f"{where}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
            if not v.is_floating_point():
                raise WeightsError(f"{where}: {k} has dtype {v.dtype}, expected a float type")
            if not torch.isfinite(v).all():
                raise WeightsError(f"{where}: {k} holds NaN or Inf")
        dec.load_state_dict({k: v.float() for k, v in tensors.items()})
        dec.meta = dict(meta)
        return dec

    def save(self, path: str | Path, *, metadata: dict[str, str] | None = None, dtype: torch.dtype = torch.float16) -> str:
        """Export the weights alone as safetensors (fp16 by default); returns the sha256."""
        from .weights import save_file

        tensors = {k: v.detach().to("cpu", dtype) for k, v in self.state_dict().items()}
        return save_file(path, tensors, {**(metadata or {})})
