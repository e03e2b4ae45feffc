"""Flicker of stylised video: a plain frame loop against stylekit.video's stabilisation.

    python docs/measure_flicker.py [--decoder runs/x/decoder.safetensors] [--device cpu]

Two generated clips, no files needed:

* ``gradient``: 32 frames of 96x64, a colour gradient moving 2 px per frame plus Gaussian
  noise (sigma 0.03), like a slow pan over a plain wall by a noisy camera;
* ``pan``: 24 frames of 128x96 panning 2 px per frame across the bundled cat photo, plus noise
  (sigma 6/255).

For each it prints the mean absolute difference between consecutive frames (in [0, 1] units,
:func:`stylekit.video.mean_frame_difference`) of the input, of the plain loop, of the default
stabilisation (output blending), of the statistics EMA alone and of both, and how far each output strays from the plain
loop's frame (the price: lag in moving areas). Lower flicker is better; the input's own value
is the motion that any faithful output keeps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stylekit import AdaINModel, Decoder, VGGEncoder  # noqa: E402
from stylekit.video import Stabilization, mean_frame_difference, stylize_frames  # noqa: E402

EXAMPLES = ROOT / "stylekit" / "examples"
STYLE = EXAMPLES / "renoir_the_wave_1879_aic81557.jpg"


def gradient_clip(frames: int = 32, w: int = 96, h: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = np.arange(w)[None, :], np.arange(h)[:, None]
    out = []
    for i in range(frames):
        g = (xs + 2 * i) / (w + 2 * frames) + 0 * ys
        img = np.stack([g, ys / h + 0 * xs, 1 - g], axis=-1)
        out.append((np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1) * 255).round().astype(np.uint8))
    return out


def pan_clip(frames: int = 24, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    im = np.asarray(Image.open(EXAMPLES / "chelsea_cat.jpg").convert("RGB").resize((226, 150)), dtype=np.float64)
    return [np.clip(im[20:116, 2 * i : 2 * i + 128] + rng.normal(0, 6, (96, 128, 3)), 0, 255).astype(np.uint8)
            for i in range(frames)]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decoder", default=None, help="decoder .safetensors (default: the shipped one)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dec = Decoder.from_file(a.decoder) if a.decoder else Decoder.from_pretrained()
    model = AdaINModel(VGGEncoder.from_pretrained(), dec)
    settings = {
        "plain loop": False,
        "stabilised (default)": True,
        "statistics EMA only": Stabilization(momentum=0.5, blend=0.0),
        "EMA and blending": Stabilization(momentum=0.5),
    }
    print(f"decoder: {a.decoder or 'shipped'} (step {dec.meta.get('step', '?')})")
    for name, clip in (("gradient", gradient_clip()), ("pan", pan_clip())):
        print(f"\nclip {name}: {len(clip)} frames {clip[0].shape[1]}x{clip[0].shape[0]}, "
              f"input mean frame difference {mean_frame_difference(clip):.4f}")  # fmt: skip
        print(f"| {'method':<22} | flicker | vs plain | off plain |")
        print(f"|{'-' * 24}|---------|----------|-----------|")
        plain = None
        for label, stab in settings.items():
            out = list(stylize_frames(clip, STYLE, stabilize=stab, model=model, device=a.device, dtype="fp32"))
            plain = out if plain is None else plain
            d = mean_frame_difference(out)
            base = mean_frame_difference(plain)
            off = float(np.mean([np.abs(x.astype(float) - p).mean() / 255 for x, p in zip(out, plain)]))
            print(f"| {label:<22} | {d:.4f}  | {d / base - 1:+7.1%}  | {off:.4f}    |")


if __name__ == "__main__":
    main()
