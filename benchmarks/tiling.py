"""Peak memory and time of one big stylisation, tiled vs untiled.

    python benchmarks/tiling.py [--width 4000 --height 3000] [--tile 1024] [--dtype bf16] [--threads N]

Each mode runs in a fresh subprocess (so the peak of one does not hide the other): it loads the
model and a photo (the example cat, resized to WIDTH x HEIGHT), resets the kernel's peak-RSS
counter (``/proc/self/clear_refs``), runs ``stylekit.transfer`` once on the CPU (bf16 by
default, ``--dtype fp32`` for the full-precision path), and
reports the wall time and the peak resident set size (``VmHWM`` of ``/proc/self/status``),
both for the whole process and for the call alone (peak minus the RSS before it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "stylekit" / "examples" / "chelsea_cat.jpg"
STYLE = ROOT / "stylekit" / "examples" / "renoir_the_wave_1879_aic81557.jpg"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(args: argparse.Namespace) -> None:
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
    print(json.dumps({"mode": args.mode, "seconds": seconds, "peak_mib": peak / 1024, "before_mib": before / 1024,
                      "call_mib": (peak - before) / 1024 if reset else None, "decoder": decoder,
                      "threads": torch.get_num_threads()}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per mode before giving up")
    ap.add_argument("--modes", nargs="+", default=["tiled", "untiled"], choices=["tiled", "untiled"])
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        return child(args)

    print(f"{args.width}x{args.height} ({args.width * args.height / 1e6:.1f} MP), tile {args.tile}, CPU {args.dtype}")
    print(f"{'mode':>8} {'seconds':>8} {'peak RSS MiB':>13} {'call MiB':>9}")
    for mode in args.modes:
        cmd = [sys.executable, __file__, "--mode", mode, "--width", str(args.width), "--height", str(args.height),
               "--tile", str(args.tile), "--threads", str(args.threads), "--dtype", args.dtype]  # fmt: skip
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


if __name__ == "__main__":
    main()
