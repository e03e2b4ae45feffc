"""Peak memory and time of one big stylisation, tiled vs untiled.

    python benchmarks/tiling.py [--width 4000 --height 3000] [--tile 1024] [--dtype auto] [--threads N]

Each mode runs in a fresh subprocess (so the peak of one does not hide the other): it loads the
model and a photo (the example cat, resized to WIDTH x HEIGHT), resets the kernel's peak-RSS
counter (``/proc/self/clear_refs``), runs ``stylekit.transfer`` once on the CPU (``--dtype auto``: bf16 where
the CPU has bf16 hardware, fp32 elsewhere; or ask for either), and
reports the wall time and the peak resident set size (``VmHWM`` of ``/proc/self/status``),
both for the whole process and for the call alone (peak minus the RSS before it). When both
modes run, it then compares the two pictures (8-bit RGB): the mean and 99.9th percentile of the
absolute difference away from a 32 px border, and the worst 8 px wide column or row band (a
seam between tiles would show there).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "stylekit" / "examples" / "chelsea_cat.jpg"
STYLE = ROOT / "stylekit" / "examples" / "renoir_the_wave_1879_aic81557.jpg"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    import stylekit
    from stylekit.weights import DECODER

    if args.threads:
        torch.set_num_threads(args.threads)
    model, decoder = stylekit.AdaINModel.from_pretrained(), DECODER.path.name
    st = stylekit.StyleTransfer("cpu", args.dtype, model=model)
    photo = Image.open(CONTENT).convert("RGB").resize((args.width, args.height), Image.BICUBIC)
    style = st.encode_style(STYLE)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    before = _status_kib("VmRSS")
    t = time.perf_counter()
    out = st(photo, style, tile=args.tile if args.mode == "tiled" else None)
    seconds = time.perf_counter() - t
    peak = _status_kib("VmHWM")
    assert out.size == photo.size
    if args.save:
        np.save(args.save, np.asarray(out))
    print(json.dumps({"mode": args.mode, "seconds": seconds, "peak_mib": peak / 1024, "before_mib": before / 1024,
                      "call_mib": (peak - before) / 1024 if reset else None, "decoder": decoder,
                      "threads": torch.get_num_threads()}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"], help="auto: bf16 where the CPU has it, else fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per mode before giving up")
    ap.add_argument("--modes", nargs="+", default=["tiled", "untiled"], choices=["tiled", "untiled"])
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        return child(args)

    print(f"{args.width}x{args.height} ({args.width * args.height / 1e6:.1f} MP), tile {args.tile}, CPU {args.dtype}")
    print(f"{'mode':>8} {'seconds':>8} {'peak RSS MiB':>13} {'call MiB':>9}")
    work = Path(tempfile.mkdtemp(prefix="stylekit-tiling-"))
    saved = {}
    for mode in args.modes:
        saved[mode] = work / f"{mode}.npy"
        cmd = [sys.executable, __file__, "--mode", mode, "--width", str(args.width), "--height", str(args.height),
               "--tile", str(args.tile), "--threads", str(args.threads), "--dtype", args.dtype,
               "--save", str(saved[mode])]  # fmt: skip
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{mode:>8}  did not finish in {args.timeout:.0f} s")
            continue
        if res.returncode != 0:
            print(f"{mode:>8}  failed (exit {res.returncode}): {res.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        call = f"{r['call_mib']:9.0f}" if r["call_mib"] is not None else f"{'n/a':>9}"
        print(f"{mode:>8} {r['seconds']:8.1f} {r['peak_mib']:13.0f} {call}   ({r['decoder']} decoder, {r['threads']} threads)")
    if all(p.exists() for p in saved.values()) and len(saved) == 2:
        compare(np.load(saved["tiled"]), np.load(saved["untiled"]))
    shutil.rmtree(work, ignore_errors=True)


def compare(tiled, untiled, border: int = 32, band: int = 8) -> None:
    """Print how far the tiled picture is from the untiled one (0..255 units)."""
    d = np.abs(tiled.astype(np.float32) - untiled.astype(np.float32))[border:-border, border:-border].mean(-1)
    h, w = d.shape
    cols = d[:, : w // band * band].reshape(h, -1, band).mean((0, 2))
    rows = d[: h // band * band].reshape(-1, band, w).mean((1, 2))
    print(f"tiled vs untiled, away from a {border} px border: mean |diff| {d.mean():.3f}, "
          f"99.9th percentile {np.percentile(d, 99.9):.2f}, worst {band} px column band {cols.max():.3f}, "
          f"worst row band {rows.max():.3f} (of 255)")  # fmt: skip


if __name__ == "__main__":
    main()
