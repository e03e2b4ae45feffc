"""Training data: folders of images, random crops and flips, one reproducible batch per step.

Each item of :class:`PairBatches` is a whole (content, style) batch for one training step,
drawn with a random generator seeded by ``(seed, rank, step)``. So the data stream depends only
on the step number: a resumed run sees exactly the batches the uninterrupted run would have
seen, and every DDP rank draws different images without a sampler to keep in sync.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from .errors import ArgumentError

__all__ = ["IMAGE_SUFFIXES", "UNREADABLE", "list_images", "split_files", "PairBatches", "read_crop"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# What reading a damaged or hostile file raises (Pillow's decoders, and the bomb guard: its warning
# is an exception where warnings are errors); training and its sample grids skip such files.
UNREADABLE: tuple[type[BaseException], ...] = (
    OSError, ValueError, EOFError, struct.error, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning,
)


def list_images(folder: str | Path) -> list[Path]:
    """All images under ``folder`` (recursive; jpg/jpeg/png/webp), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArgumentError(f"image folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ArgumentError(f"image folder {str(folder)!r} holds no {'/'.join(IMAGE_SUFFIXES)} files")
    return files


def split_files(files: Sequence[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split by a hash of each file name (stable as folders grow)."""
    train: list[Path] = []
    val: list[Path] = []
    for f in files:
        h = int.from_bytes(hashlib.sha1(f.name.encode()).digest()[:4], "big") / 2**32
        (val if h < val_fraction else train).append(f)
    return train, val


def read_crop(path: Path, crop: int, rng: np.random.Generator) -> np.ndarray:
    """Decode an image, scale it so its short side is at least ``crop`` (and not much more
    than needed when it is huge), take a random ``crop``×``crop`` square, flip it half the time.
    Returns an HxWx3 uint8 array.

    Raises ``Image.DecompressionBombError`` for a picture over Pillow's ``MAX_IMAGE_PIXELS``,
    checked on the header before decoding (Pillow itself only warns up to twice that; a
    ``warnings`` filter turning that into an error would not be thread-safe), and what Pillow
    raises for a file it cannot read (``OSError``, ``ValueError``, ``EOFError``, ``struct.error``,
    ``SyntaxError``): :class:`PairBatches` skips and reports those files."""
    with Image.open(path) as im:
        w, h = im.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit and w * h > limit:
            raise Image.DecompressionBombError(f"{path}: {w}x{h} pixels, over Pillow's MAX_IMAGE_PIXELS ({limit})")
        im.draft("RGB", (crop * 2, crop * 2))  # JPEG: decode at reduced scale when far larger
        im = ImageOps.exif_transpose(im)
        if im.mode != "RGB":
            im = _to_rgb(im)
        w, h = im.size
        short = min(w, h)
        target = crop if short < crop else min(short, int(crop * 1.5))
        if short != target:
            s = target / short
            im = im.resize((max(crop, round(w * s)), max(crop, round(h * s))), Image.Resampling.BILINEAR, reducing_gap=2.0)
        w, h = im.size
        x, y = int(rng.integers(0, w - crop + 1)), int(rng.integers(0, h - crop + 1))
        im = im.crop((x, y, x + crop, y + crop))
        arr = np.asarray(im, dtype=np.uint8)
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    return arr


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "P", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


class PairBatches(Dataset):
    """Item ``step`` is a dict with uint8 ``content`` and ``style`` batches (B, 3, crop, crop)
    and ``skipped``: the files that could not be read (each replaced by another random one).

    Args:
        content, style: image files.
        batch_size: images per batch.
        crop: an int, or a function from the step to the crop size (a curriculum).
        seed, rank: seed of the per-step generator.
    """

    def __init__(
        self,
        content: Sequence[Path],
        style: Sequence[Path],
        *,
        batch_size: int,
        crop: int | Callable[[int], int],
        seed: int = 0,
        rank: int = 0,
        length: int = 10**9,
    ) -> None:
        self.content, self.style = list(content), list(style)
        self.batch_size, self.seed, self.rank, self.length = batch_size, seed, rank, length
        self.crop = crop if callable(crop) else (lambda step, c=crop: c)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, step: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.rank, step])
        crop = self.crop(step)
        skipped: list[str] = []
        out: dict[str, Any] = {}
        for kind, files in (("content", self.content), ("style", self.style)):
            arrs: list[np.ndarray] = []
            while len(arrs) < self.batch_size:
                f = files[int(rng.integers(len(files)))]
                try:  # no warnings filter here: catch_warnings is not thread-safe (read_crop checks bombs itself)
                    arrs.append(read_crop(f, crop, rng))
                except UNREADABLE:
                    skipped.append(str(f))
                    if len(skipped) > 50 * self.batch_size:
                        raise RuntimeError(f"no readable images among the {kind} files") from None
            out[kind] = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()
        out["skipped"] = skipped
        out["step"] = step
        return out
