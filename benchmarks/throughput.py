"""Images per second of batched transfers: eager, ``torch.compile`` and CUDA graphs, on any device.

    python benchmarks/throughput.py --device cuda [--sizes 256 512] [--batch 64] [--modes eager compile cudagraphs]
    python benchmarks/throughput.py --device cpu --sizes 256 --batch 8 --modes eager   # the CPU's figure

Each measurement stylises a batch of ``--batch`` square N x N content images (the bundled cat,
cropped and scaled, repeated) with one style (the bundled Renoir at N px), under the device's
compute dtype (``--dtype``, default as ``stylekit.transfer`` chooses: bf16 on CUDA and on CPUs with
bf16 hardware), channels-last, with the weights already cast once (``stylekit.model.compute_model``,
what ``transfer()`` runs). Two rows per mode and size:

- ``style per batch``: the whole forward, the style image encoded in every call (what a
  one-off ``transfer(content_batch, style)`` computes);
- ``style reused``: the style's statistics computed once outside the timed loop (what
  ``StyleTransfer.encode_style`` gives), so a call is the content encoder, AdaIN and the decoder.

Modes: ``eager`` (the module as ``transfer()`` runs it), ``compile`` (``torch.compile``, Inductor,
default mode), ``cudagraphs`` (``torch.compile(mode="reduce-overhead")``: Inductor with CUDA graphs;
CUDA only). The ``api`` mode times ``stylekit.transfer`` itself on the batch tensor already on the
device (input checks, padding and the cache lookup included; the style passed as a ``Style``
for the reused row). Every number is the median over ``--repeats`` timed calls after
``--warmup`` untimed ones (compilation happens in those), with the device synchronised around
each call; images/s = batch / median seconds. The ratio column divides by the eager row of the
same size and style row, measured in the same run; the last column is the largest difference
(of 1) between the mode's picture and the eager one (both clamped to [0, 1]), so a fast mode that
computes something else shows.
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
import stylekit  # noqa: E402
from stylekit.device import autocast, resolve_device, resolve_dtype  # noqa: E402
from stylekit.model import AdaINModel, compute_model  # noqa: E402

CONTENT = ROOT / "stylekit" / "examples" / "chelsea_cat.jpg"
STYLE = ROOT / "stylekit" / "examples" / "renoir_the_wave_1879_aic81557.jpg"
MODES = ("eager", "compile", "cudagraphs", "api")


def square(path: Path, n: int) -> torch.Tensor:
    """The picture's central square at n x n px, as a (1, 3, n, n) float tensor in [0, 1]."""
    im = Image.open(path).convert("RGB")
    s = min(im.size)
    left, top = (im.width - s) // 2, (im.height - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((n, n), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_seconds(fn, device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def runners(mode: str, model: AdaINModel, dtype: torch.dtype, device: torch.device, c: torch.Tensor, s: torch.Tensor):
    """(style per batch, style reused) callables for one mode."""
    if mode == "api":
        style = stylekit.StyleTransfer(device=device, dtype=dtype).encode_style(s)
        stylekit.api.set_style_cache_size(0)  # the per-batch row really encodes the style every call
        return (
            lambda: stylekit.transfer(c, s, device=device, dtype=dtype, progress=False),
            lambda: stylekit.transfer(c, style, device=device, dtype=dtype, progress=False),
        )

    def whole(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return model.stylize(c, model.style_stats(s))

    def reused(c: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return model.stylize(c, (mean, std))

    if mode in ("compile", "cudagraphs"):
        kw = {"mode": "reduce-overhead"} if mode == "cudagraphs" else {}
        whole, reused = torch.compile(whole, dynamic=False, **kw), torch.compile(reused, dynamic=False, **kw)
    with torch.inference_mode(), autocast(device, dtype):
        mean, std = model.style_stats(s)

    def call(fn, *args):
        def run():
            with torch.inference_mode(), autocast(device, dtype):
                if mode == "cudagraphs":
                    torch.compiler.cudagraph_mark_step_begin()
                return fn(*args)
        return run

    return call(whole, c, s), call(reused, c, mean, std)


def rate(per_s: float) -> str:
    """Images per second: whole numbers with separators, three digits below 100 (0.47, not 0)."""
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto (as transfer() picks), fp32, bf16, fp16")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batch", type=int, nargs="+", default=[64], help="one or more batch sizes")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=["eager", "compile", "cudagraphs"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    device = resolve_device(args.device)
    dtype = resolve_dtype(device, args.dtype)
    if "cudagraphs" in args.modes and device.type != "cuda":
        ap.error(f"--modes cudagraphs needs a CUDA device, not {device}")
    if device.type == "cpu":
        stylekit.device.tune_malloc()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type}, {torch.get_num_threads()} threads"
    print(f"device: {name}; dtype: {str(dtype).removeprefix('torch.')}; torch {torch.__version__}", flush=True)

    base = AdaINModel.from_pretrained().to(device, memory_format=torch.channels_last)
    model = compute_model(base, dtype).model
    print("| N | batch | mode | style | s / call | images/s | x eager | max diff to eager |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for b in args.batch:
            c = square(CONTENT, n).expand(b, -1, -1, -1).contiguous(memory_format=torch.channels_last).to(device)
            s = square(STYLE, n).contiguous(memory_format=torch.channels_last).to(device)
            eager: dict[str, float] = {}
            ref: torch.Tensor | None = None
            for mode in args.modes:
                try:
                    pair = runners(mode, model, dtype, device, c, s)
                    times = [median_seconds(fn, device, args.warmup, args.repeats) for fn in pair]
                    out = pair[1]().float().clamp(0, 1)
                except Exception as e:  # a mode this torch/device cannot run: say so, go on with the others
                    print(f"| {n} | {b} | {mode} | - | failed: {type(e).__name__}: {str(e).splitlines()[0][:120]} | | | |", flush=True)
                    continue
                if mode == "eager":
                    ref = out
                diff = f"{(out - ref).abs().max().item():.4f}" if ref is not None else ""
                for row, t in zip(("style per batch", "style reused"), times):
                    if mode == "eager":
                        eager[row] = t
                    ratio = f"{eager[row] / t:.2f}" if row in eager else ""
                    print(f"| {n} | {b} | {mode} | {row} | {t:.4f} | {rate(b / t)} | {ratio} | {diff} |", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
