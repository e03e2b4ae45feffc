"""The three methods on the same pair: seconds per call, and how fast Gatys converges from the
content image against from the AdaIN result.

    python benchmarks/methods.py                      # cat + The Wave, 256 px (Gatys 128 px)
    python benchmarks/methods.py --gatys-size 256 --gatys-steps 300

Prints, for ``method="adain"``, ``"wct"`` and ``"gatys"`` (seconds per Gatys step), the median
wall time of ``StyleTransfer(...)(cat, wave, size=N)`` in the chosen dtype. Then runs Gatys for
``--gatys-steps`` steps twice, from ``init="content"`` (the seeds' way) and from
``init="adain"``, and prints the Gatys loss (content + style + total variation, the objective
both minimise) after selected steps, and the first step at which the AdaIN start reaches the
content start's final loss.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stylekit import StyleTransfer  # noqa: E402
from stylekit.device import resolve_dtype  # noqa: E402
from stylekit.gatys import gatys  # noqa: E402

EX = ROOT / "stylekit" / "examples"


def to_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="short side for adain and wct")
    ap.add_argument("--gatys-size", type=int, default=128, help="short side for gatys")
    ap.add_argument("--gatys-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="auto")
    a = ap.parse_args()

    st = StyleTransfer("cpu", a.dtype)
    dtype = resolve_dtype(torch.device("cpu"), a.dtype)
    cat = Image.open(EX / "chelsea_cat.jpg").convert("RGB")
    wave = Image.open(EX / "renoir_the_wave_1879_aic81557.jpg").convert("RGB")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dtype {dtype}")

    print(f"\nseconds per call, cat + The Wave, short side {a.size} px (Gatys {a.gatys_size} px):")
    t_adain = timed(lambda: st(cat, wave, size=a.size), a.repeats)
    t_wct = timed(lambda: st(cat, wave, size=a.size, method="wct"), a.repeats)
    t_gatys = timed(lambda: st(cat, wave, size=a.gatys_size, method="gatys", steps=10, progress=False), 1) / 10
    print(f"  adain  {t_adain:8.3f} s")
    print(f"  wct    {t_wct:8.3f} s  ({t_wct / t_adain:.1f}x adain)")
    print(f"  gatys  {t_gatys:8.3f} s per step at {a.gatys_size} px ({a.gatys_steps} steps: {t_gatys * a.gatys_steps:.0f} s)")

    small = cat.resize((round(cat.width * a.gatys_size / min(cat.size)), a.gatys_size), Image.LANCZOS)
    small = small.crop((0, 0, small.width // 8 * 8, small.height // 8 * 8))
    c = to_tensor(small)
    s = to_tensor(wave.resize((round(wave.width * a.gatys_size / min(wave.size)), a.gatys_size), Image.LANCZOS))
    start = st(c, s)  # the AdaIN result, what init="adain" starts from
    enc = st.model.encoder
    runs = {}
    for init in ("content", "adain"):
        t0 = time.perf_counter()
        res = gatys(enc, c, [s], steps=a.gatys_steps, init=init, init_image=start, progress=False, dtype=dtype)
        runs[init] = (res.losses, time.perf_counter() - t0)
    marks = [m for m in (0, 10, 25, 50, 100, 200, 300, 500, 1000) if m < a.gatys_steps] + [a.gatys_steps - 1]
    print(f"\nGatys loss before step k ({a.gatys_size} px, {a.gatys_steps} steps; lower is better):")
    print("  k      " + "".join(f"{m + 1:>9d}" for m in marks))
    for init, (losses, secs) in runs.items():
        print(f"  {init:7s}" + "".join(f"{losses[m]:9.4f}" for m in marks) + f"   ({secs:.0f} s)")
    target = runs["content"][0][-1]
    hit = next((k + 1 for k, v in enumerate(runs["adain"][0]) if v <= target), None)
    if hit is None:
        print(f"  init='adain' did not reach init='content''s loss after {a.gatys_steps} steps ({target:.4f})")
    else:
        print(f"  init='adain' reaches init='content''s loss after {a.gatys_steps} steps ({target:.4f}) at step {hit}: "
              f"{a.gatys_steps / hit:.1f}x fewer steps")  # fmt: skip


if __name__ == "__main__":
    main()
