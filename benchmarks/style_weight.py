"""The effect of the style weight λ (``--style-weight``) on a fixed validation batch.

    python benchmarks/style_weight.py                          # λ = 1, 10, 100; 60 steps each
    python benchmarks/style_weight.py --weights 3 10 30 --steps 200 --init none

For each λ, trains a decoder for ``--steps`` steps of batch 8 at ``--crop`` px (from the shipped
decoder by default, so that a few minutes of CPU show where each λ pulls it; ``--init none``
trains from scratch), with everything else equal (seed, data, learning rate). Then prints, on
the held-out pairs of ``benchmarks/quality.py`` at 256 px: the content loss, the style loss
(both with λ = 1, in the per-tap normalised units of ``stylekit.losses``), the structure kept
(SSIM of blurred luminance against the content) and the texture (luminance gradient / the
style image's), and saves a contact sheet: content | style | one column per λ.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality import DATA, contact_sheet, grad_energy, load, ssim_blurred, to_tensor  # noqa: E402

from stylekit.data import list_images, split_files  # noqa: E402
from stylekit.decoder import Decoder  # noqa: E402
from stylekit.encoder import STYLE_TAPS, VGGEncoder  # noqa: E402
from stylekit.losses import content_loss, style_loss  # noqa: E402
from stylekit.model import AdaINModel  # noqa: E402
from stylekit.ops import adain  # noqa: E402
from stylekit.train import train  # noqa: E402
from stylekit.weights import DECODER  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--init", default=str(DECODER.path), help="decoder to start from, or 'none'")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--sheet", type=Path, default=ROOT / "benchmarks" / "style_weight_sheet.jpg")
    a = ap.parse_args()
    init = None if a.init == "none" else a.init

    work = Path(tempfile.mkdtemp(prefix="stylekit-lambda-"))
    decoders = {}
    for lam in a.weights:
        res = train(content_dir=str(DATA / "content"), style_dir=str(DATA / "style"), out=str(work / f"l{lam:g}"),
                    steps=a.steps, crop=a.crop, lr=a.lr, style_weight=lam, init=init, seed=0, workers=0,
                    checkpoint_every=10**9, sample_every=10**9, resume=False)  # fmt: skip
        decoders[lam] = Decoder.from_file(res.decoder_path).eval()

    torch.set_grad_enabled(False)
    _, cval = split_files(list_images(DATA / "content"), 0.02)
    _, sval = split_files(list_images(DATA / "style"), 0.02)
    enc = VGGEncoder.from_pretrained()
    models = {lam: AdaINModel(enc, d) for lam, d in decoders.items()}
    metrics: dict[float, list[list[float]]] = {lam: [] for lam in models}
    rows = []
    for cpath, spath in list(zip(cval, sval))[: a.pairs]:
        c, s = to_tensor(load(cpath, 256)), to_tensor(load(spath, 256))
        fs = enc(s, STYLE_TAPS)
        t = adain(enc.encode(c), fs["relu4_1"])
        outs = [models[lam](c, s).clamp(0, 1) for lam in models]
        for lam, y in zip(models, outs):
            fy = enc(y, STYLE_TAPS)
            metrics[lam].append([float(content_loss(fy["relu4_1"], t)), float(style_loss(fy, fs)),
                                 ssim_blurred(y, c), grad_energy(y) / max(grad_energy(s), 1e-6)])  # fmt: skip
        rows.append([c, s, *outs])

    start = "the shipped decoder" if init else "scratch"
    print(f"\n{a.steps} steps of batch 8 at {a.crop} px from {start} per λ; {len(rows)} held-out pairs at 256 px")
    print(f"{'λ':>8}{'content loss':>14}{'style loss':>12}{'SSIM(blur)':>12}{'texture':>10}")
    for lam, m in metrics.items():
        v = np.mean(m, axis=0)
        print(f"{lam:>8g}{v[0]:>14.3f}{v[1]:>12.3f}{v[2]:>12.3f}{v[3]:>10.2f}")

    contact_sheet(rows, 160).save(a.sheet, quality=90)
    print(f"contact sheet (content | style | λ = {', '.join(f'{lam:g}' for lam in models)}): {a.sheet}")


if __name__ == "__main__":
    main()
