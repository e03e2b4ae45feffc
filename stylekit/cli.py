"""The ``stylekit`` command line: ``demo``, ``transfer``, ``train`` and ``info``.

Errors print one line on stderr and exit with status 2 (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import StylekitError

EXAMPLES = Path(__file__).parent / "examples"
DEMO_CONTENT = EXAMPLES / "chelsea_cat.jpg"
DEMO_STYLE = EXAMPLES / "renoir_the_wave_1879_aic81557.jpg"


def _alpha(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--alpha must be a number in [0, 1], got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", help="auto (bf16 where fast), fp32, bf16, fp16")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(prog="stylekit", description="Arbitrary-style transfer with AdaIN.")
    ap.add_argument("--version", action="version", version=f"stylekit {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="stylise the bundled photo with the bundled painting")
    p.add_argument("-o", "--output", default="demo.jpg", help="where to write the result (default demo.jpg)")
    p.add_argument("--alpha", type=_alpha, default=1.0, help="style strength in [0, 1] (default 1)")
    _common(p)

    p = sub.add_parser("transfer", help="stylise a content image with a style image")
    p.add_argument("content", help="content image file")
    p.add_argument("style", help="style image file")
    p.add_argument("-o", "--output", required=True, help="output image file (.jpg, .png, .webp)")
    p.add_argument("--alpha", type=_alpha, default=1.0, help="style strength in [0, 1] (default 1)")
    p.add_argument("--size", type=int, default=None, help="resize the content so its short side is SIZE px")
    _common(p)

    p = sub.add_parser("train", help="train a decoder on folders of photos and paintings")
    p.add_argument("--content-dir", required=True)
    p.add_argument("--style-dir", required=True)
    p.add_argument("--out", required=True, help="run folder (checkpoint, decoder.safetensors, log.csv, samples/)")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--warmup-crop", type=int, default=None, help="smaller crop for the first --warmup-steps")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--style-weight", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--sample-every", type=int, default=250)
    p.add_argument("--init", default=None, help="start from this decoder .safetensors (e.g. the shipped one)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    _common(p)

    sub.add_parser("info", help="versions, device, dtype and the weights with their sha256")
    return ap


def _cmd_transfer(content, style, output, alpha, device, dtype, size=None) -> None:
    from .api import transfer
    from .image import save_image

    out = transfer(content, style, alpha, device=device, dtype=dtype, size=size)
    save_image(out, output)
    print(f"wrote {output} ({out.width}x{out.height})")


def _cmd_train(a: argparse.Namespace) -> None:
    from .train import train

    r = train(
        content_dir=a.content_dir, style_dir=a.style_dir, out=a.out, steps=a.steps, batch_size=a.batch_size,
        crop=a.crop, warmup_crop=a.warmup_crop, warmup_steps=a.warmup_steps, lr=a.lr,
        style_weight=a.style_weight, workers=a.workers, seed=a.seed, checkpoint_every=a.checkpoint_every,
        sample_every=a.sample_every, init=a.init, resume=not a.no_resume, compile=a.compile,
        device=a.device, dtype=a.dtype,
    )  # fmt: skip
    print(f"step {r.step}: loss {r.loss:.4f} (content {r.content_loss:.4f}, style {r.style_loss:.4f}); "
          f"decoder in {r.decoder_path}; {r.skipped_files} unreadable files skipped")  # fmt: skip


def _cmd_info() -> None:
    import platform

    import torch

    from . import __version__
    from .device import resolve_device, resolve_dtype
    from .weights import DECODER, ENCODER

    dev = resolve_device("auto")
    print(f"stylekit {__version__}  torch {torch.__version__}  python {platform.python_version()}")
    print(f"device: {dev}  dtype: {str(resolve_dtype(dev)).replace('torch.', '')}")
    for w in (ENCODER, DECODER):
        state = "present" if w.exists() else "MISSING"
        print(f"{w.what}: {w.path} ({state}) sha256 {w.sha256}")


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        if a.command == "demo":
            _cmd_transfer(DEMO_CONTENT, DEMO_STYLE, a.output, a.alpha, a.device, a.dtype)
        elif a.command == "transfer":
            _cmd_transfer(a.content, a.style, a.output, a.alpha, a.device, a.dtype, a.size)
        elif a.command == "train":
            _cmd_train(a)
        elif a.command == "info":
            _cmd_info()
    except StylekitError as e:
        if a.debug:
            raise
        print(f"stylekit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stylekit: interrupted", file=sys.stderr)
        return 130
    return 0
