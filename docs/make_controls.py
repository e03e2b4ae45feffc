"""Make the two pictures at the top of docs/controls.md with the shipped decoder.

    python docs/make_controls.py [--gatys-steps 60]

Writes ``docs/images/controls/methods.jpg`` (content | style | adain | wct | gatys) and
``docs/images/controls/controls.jpg`` (second style | preserve_color="luminance" | "histogram" |
a 50/50 mix | two regions). The cat and Renoir's *The Wave* at 256 px; Gatys at 128 px from
the AdaIN result. Rerun it whenever ``stylekit/weights/decoder.safetensors`` changes (a few
minutes on a 2-core CPU, most of it Gatys).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stylekit import StyleTransfer  # noqa: E402

EX = ROOT / "stylekit" / "examples"
OUT = ROOT / "docs" / "images" / "controls"


def row(images: list[Image.Image], height: int = 256) -> Image.Image:
    ims = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in images]
    out = Image.new("RGB", (sum(im.width for im in ims) + 6 * (len(ims) - 1), height), "white")
    x = 0
    for im in ims:
        out.paste(im, (x, 0))
        x += im.width + 6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gatys-steps", type=int, default=60)
    a = ap.parse_args()
    st = StyleTransfer("cpu", "auto")
    cat, wave, gauguin = (Image.open(EX / n).convert("RGB") for n in
                          ("chelsea_cat.jpg", "renoir_the_wave_1879_aic81557.jpg",
                           "gauguin_why_are_you_angry_1896_aic19339.jpg"))  # fmt: skip
    adain = st(cat, wave, size=256)
    wct = st(cat, wave, size=256, method="wct")
    gatys = st(cat, wave, size=128, method="gatys", steps=a.gatys_steps, init="adain")
    lum = st(cat, wave, size=256, preserve_color="luminance")
    hist = st(cat, wave, size=256, preserve_color="histogram")
    mix = st(cat, [wave, gauguin], size=256, style_weights=[0.5, 0.5])
    left = np.zeros((256, 384), np.uint8)
    left[:, :192] = 255
    regions = st(cat, [wave, gauguin], size=256, masks=[left, 255 - left])
    OUT.mkdir(parents=True, exist_ok=True)
    row([cat, wave, adain, wct, gatys]).save(OUT / "methods.jpg", quality=82, optimize=True)
    row([gauguin, lum, hist, mix, regions]).save(OUT / "controls.jpg", quality=82, optimize=True)
    print(f"wrote {OUT / 'methods.jpg'} and {OUT / 'controls.jpg'}")


if __name__ == "__main__":
    main()
