"""The ``stylekit`` command line (also ``python -m stylekit``).

Subcommands: ``transfer``, ``demo``, ``video``, ``train``, ``export`` and ``info``. Errors print
one line on stderr and exit with status 2 (a traceback only with ``--debug``); ``--json``
prints machine-readable results on stdout.
"""

from __future__ import annotations

import argparse
import glob
import inspect
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ArgumentError, ImageError, ShapeError, StylekitError

EXAMPLES = Path(__file__).parent / "examples"
DEMO_CONTENT = EXAMPLES / "chelsea_cat.jpg"
DEMO_STYLE = EXAMPLES / "renoir_the_wave_1879_aic81557.jpg"
# The bundled photo is 451 x 300. The decoder's strokes have a fixed size in pixels, so at 300 px
# they cover the cat's eyes and whiskers; the demo stylises it at twice that (902 x 600).
DEMO_SIZE = 600
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
STDIO = "-"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``stylekit transfer: error: ...``), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--alpha must be a number in [0, 1], got {text!r}")
    return value


def _tile(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile must be auto or a number of pixels, got {text!r}") from None


def _crops(text: str) -> int | tuple[int, ...]:
    """``--crop``: one size, or comma-separated sizes taken in turn (TrainConfig checks their values)."""
    try:
        sizes = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--crop must be a size in px or comma-separated sizes (e.g. 256,384), got {text!r}") from None
    return sizes[0] if len(sizes) == 1 else sizes


def _weights(text: str) -> list[float]:
    """Comma-separated weights, held to stylekit.style.check_style_weights's rule (imported only
    when the flag is given: it brings torch)."""
    from .style import check_style_weights

    try:
        values = [float(w) for w in text.split(",")]
        check_style_weights(values, len(values))
    except (ValueError, ArgumentError):
        raise argparse.ArgumentTypeError(f"--style-weights must be comma-separated numbers >= 0, not all 0 (e.g. 3,1), got {text!r}") from None
    return values


def _device_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", help="auto (bf16 where fast), fp32, bf16, fp16")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")


def _style_opts(p: argparse.ArgumentParser, size: int | None = None, size_help: str = "default: keep") -> None:
    p.add_argument("--alpha", type=_alpha, default=1.0, help="style strength in [0, 1] (default 1)")
    p.add_argument("--size", type=int, default=size, help=f"resize so the short side is SIZE px ({size_help})")


def _transfer_opts(p: argparse.ArgumentParser, size: int | None = None, size_help: str = "default: keep") -> None:
    _style_opts(p, size, size_help)
    p.add_argument("--preserve-color", nargs="?", const="luminance", default=None, metavar="MODE",
                   help="keep the content's colours: luminance (the default MODE) or histogram")  # fmt: skip
    p.add_argument("--method", default=None, help="adain (default), wct or gatys, as stylekit.transfer(method=)")
    p.add_argument("--max-size", type=int, default=None, metavar="N",
                   help="scale a content down so its long side is at most N px (after --size)")  # fmt: skip
    p.add_argument("--tile", type=_tile, default=None, metavar="auto|N",
                   help="stylise big pictures in N px tiles (auto: 1024 px tiles for pictures over 4 MP): "
                        "memory bounded by one tile, for pictures too large to stylise whole")  # fmt: skip
    p.add_argument("--decoder", default=None, help="use this decoder .safetensors (e.g. from stylekit train)")
    _device_opts(p)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = _Parser(prog="stylekit", description="Arbitrary-style transfer with AdaIN (Huang & Belongie, 2017).")
    ap.add_argument("--version", action="version", version=f"stylekit {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transfer", help="stylise images: every content with every style",
                       description="stylekit transfer CONTENT... STYLE -o OUT, or CONTENT... --style STYLE... -o OUT. "
                       "Each may be a file, a folder (its images), a quoted glob ('photos/*.jpg') or - (stdin). "
                       "Several styles give one result per content and style, unless --style-weights mixes them "
                       "or --mask gives each its own region: then one result per content.")  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="content images, then the style (unless --style is given)")
    p.add_argument("-s", "--style", action="append", default=None, help="style image, folder or glob (repeatable)")
    p.add_argument("-o", "--output", required=True, help="output file, folder (for many results) or - (stdout)")
    p.add_argument("--format", choices=["jpg", "png", "webp"], default=None,
                   help="file type for folder output (default jpg) and stdout (default png)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: on a terminal; over the images for several, "
                        "else over the Gatys steps or tiles)")  # fmt: skip
    p.add_argument("--style-weights", type=_weights, default=None, metavar="W,W,...",
                   help="mix all the styles into one, with one weight per style in order (e.g. 3,1: 75%% and 25%%)")
    p.add_argument("--mask", action="append", default=None, metavar="FILE",
                   help="one per style, in order (repeatable): each style paints where its grayscale mask is "
                   "white, stretched to the content; where no mask is white the content stays")  # fmt: skip
    _transfer_opts(p)

    p = sub.add_parser("demo", help="stylise the bundled photo with the bundled painting")
    p.add_argument("-o", "--output", default="demo.jpg", help="where to write the result (default demo.jpg)")
    _transfer_opts(p, size=DEMO_SIZE, size_help=f"default {DEMO_SIZE}: twice the photo's")

    p = sub.add_parser("video", help="stylise a video (needs stylekit-nst[video]), keeping fps and audio")
    p.add_argument("input", help="input video file")
    p.add_argument("-o", "--output", required=True, help="output video file (.mp4, .mkv, .mov, .webm)")
    p.add_argument("-s", "--style", required=True, action="append", help="style image (one)")
    _style_opts(p)
    p.add_argument("--no-stabilize", action="store_true", help="plain frame loop, no temporal stabilisation")
    p.add_argument("--momentum", type=float, default=None, help="running average of content statistics, [0, 1)")
    p.add_argument("--blend", type=float, default=None, help="largest weight of the previous output, [0, 1)")
    p.add_argument("--threshold", type=float, default=None, help="pixel change above which nothing is blended")
    p.add_argument("--no-audio", action="store_true", help="drop the audio track")
    p.add_argument("--codec", default=None, help="video encoder (default: the container's, e.g. H.264 for .mp4)")
    p.add_argument("--crf", type=int, default=18, help="quality for H.264/H.265/VP9, lower is better (default 18)")
    p.add_argument("--decoder", default=None, help="use this decoder .safetensors (e.g. from stylekit train)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    _device_opts(p)

    p = sub.add_parser("train", help="train a decoder on folders of photos and paintings")
    p.add_argument("--content-dir", required=True, help="folder of photos (searched recursively)")
    p.add_argument("--style-dir", required=True, help="folder of artworks (searched recursively)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, decoder.safetensors, log.csv, samples/)")
    p.add_argument("--steps", type=int, default=20000, help="total steps; a resumed run goes on to this (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="pictures per step (default %(default)s)")
    p.add_argument("--crop", type=_crops, default=256, metavar="PX[,PX...]",
                   help="training crop in px; several sizes are taken in turn, one per step (default %(default)s)")
    p.add_argument("--warmup-crop", type=int, default=None, help="smaller crop for the first --warmup-steps")
    p.add_argument("--warmup-steps", type=int, default=0, help="steps at --warmup-crop (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate, decayed as lr / (1 + 5e-5 step) (default %(default)s)")
    p.add_argument("--lr-warmup", type=int, default=0, help="ramp the lr up over N first steps (use ~100 with --init)")
    p.add_argument("--style-weight", type=float, default=10.0, help="lambda in content + lambda * style (default %(default)s)")
    p.add_argument("--grid-weight", type=float, default=0.0,
                   help="weight of the penalty on patterns repeating every 8 px (stylekit.losses.grid_loss; default %(default)s)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="data loader processes (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model, the crops and the pairs (default %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=250,
                   help="write checkpoint.safetensors and decoder.safetensors every N steps (default %(default)s)")  # fmt: skip
    p.add_argument("--sample-every", type=int, default=250, help="write samples/ pictures every N steps (default %(default)s)")
    p.add_argument("--init", default=None, help="start from this decoder .safetensors (e.g. the shipped one)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    _device_opts(p)

    p = sub.add_parser("export", help="write the whole model as one ONNX (or TorchScript) graph")
    p.add_argument("-o", "--output", default=None, help="file to write (default stylekit.onnx / stylekit.pt)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default=None, help="default: from -o, else onnx")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17, or 18 with --dynamo)")
    p.add_argument("--dynamo", action="store_true", help="use the torch.export-based ONNX exporter (opset >= 18)")
    p.add_argument("--decoder", default=None, help="export this decoder .safetensors instead of the shipped one")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")

    p = sub.add_parser("info", help="versions, device, dtype and the weights with their sha256")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    return ap


# --------------------------------------------------------------------------- transfer and demo


def _transfer_options(a: argparse.Namespace) -> dict[str, Any]:
    """``preserve_color=`` / ``method=`` / ``max_size=`` / ``tile=`` for stylekit.transfer, passed
    only when given and supported."""
    import stylekit

    params = inspect.signature(stylekit.transfer).parameters
    opts = {}
    for flag, name, value in (("--preserve-color", "preserve_color", a.preserve_color), ("--method", "method", a.method),
                              ("--max-size", "max_size", a.max_size), ("--tile", "tile", a.tile)):  # fmt: skip
        if value is None:
            continue
        if name not in params:
            raise ArgumentError(f"{flag}: this version of stylekit.transfer() has no {name}= option")
        opts[name] = value
    return opts


def _check_preserve_color(a: argparse.Namespace) -> None:
    value = a.preserve_color
    if value is not None and (Path(value).suffix.lower() in IMAGE_SUFFIXES or Path(value).exists()):
        raise ArgumentError(f"--preserve-color took {value!r} as its MODE: write the images first, "
                            "or give the mode (--preserve-color luminance)")  # fmt: skip


def _expand(spec: str, what: str) -> list[Path | str]:
    """A file, a folder (its images, sorted), a glob pattern, or - (stdin)."""
    from .image import is_url

    if spec == STDIO or is_url(spec):
        return [spec]  # a URL as typed (Path would fold its //): reading it names it as one
    p = Path(spec)
    if p.is_dir():
        files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        if not files:
            raise ArgumentError(f"{what}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder {spec!r}")
        return list(files)
    if p.exists() or not any(c in spec for c in "*?["):
        return [p]  # a missing file is reported, naming it, when it is read
    files = sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
    if not files:
        raise ArgumentError(f"{what}: no files match {spec!r}")
    return list(files)


def _read_stdin(what: str) -> bytes:
    """Standard input's bytes: decoded (with every check of a file) where the picture is read."""
    data = sys.stdin.buffer.read()
    if not data:
        raise ImageError(f"{what}: nothing on standard input")
    return data


def _destinations(contents: list, styles: list, output: str, fmt: str | None, inputs: tuple = ()) -> list[tuple[Any, Any, str]]:
    """(content, style, destination) for every pair; destination ``-`` is stdout. A style may be a
    tuple of styles (mixed, or one per region): one result per content. Every check of ``-o``
    is made here, before any work: the extension, --format, a file where a folder is needed (or
    the other way round), two results with one name, and a result that would overwrite one of
    ``inputs`` (the contents, styles and masks). The output folder is created here."""
    from PIL import Image

    from .image import unknown_extension

    pairs = [(c, s) for c in contents for s in styles]
    if output == STDIO:
        if len(pairs) != 1:
            raise ArgumentError(f"-o - (stdout) takes one result, but there are {len(pairs)} (give a folder)")
        return [(*pairs[0], STDIO)]
    if not output.strip():
        raise ArgumentError("-o is empty: give a file (out.jpg), a folder or - (stdout)")
    out = Path(output)
    as_folder = output.endswith(("/", os.sep)) or out.is_dir()
    image_suffix = out.suffix.lower() in Image.registered_extensions()
    result: list[tuple[Any, Any, str]] = []
    if len(pairs) == 1 and out.suffix and not as_folder:
        problem = unknown_extension(out)  # save_image's rule, checked before the work, not after it
        if problem:
            raise ArgumentError(f"-o {output}: {problem}")
        if fmt is not None and Image.registered_extensions()[out.suffix.lower()] != _FORMATS[fmt]:
            raise ArgumentError(f"-o {output} is a {out.suffix} file but --format is {fmt}: drop --format, or name a .{fmt} file")
        result.append((*pairs[0], str(out)))
    else:
        if out.exists() and not out.is_dir():
            if output.endswith(("/", os.sep)):
                need = f"a trailing {output[-1]} names a folder"
            else:
                need = f"{len(pairs)} results need a folder" if len(pairs) > 1 else "with no image file extension it names a folder"
            raise ArgumentError(f"-o {output}: {need}, and {str(out)!r} is a file")
        if len(pairs) > 1 and image_suffix and not as_folder:
            raise ArgumentError(f"-o {output}: {len(pairs)} results need a folder, not an image file name "
                                f"(to write them into a folder named so, end it with {os.sep})")  # fmt: skip
        stem = lambda x: "stdin" if x == STDIO else Path(x).stem  # noqa: E731
        seen: dict[str, tuple[Any, Any]] = {}
        for c, s in pairs:
            name = stem(c) if len(styles) == 1 else f"{stem(c)}__{stem(s)}"
            dest = str(out / f"{name}.{fmt or 'jpg'}")
            if dest in seen:
                raise ArgumentError(f"{_pair(*seen[dest])} and {_pair(c, s)} would both be written to {dest}; rename one")
            seen[dest] = (c, s)
            result.append((c, s, dest))
    _refuse_overwriting(result, inputs, output)
    folders = {Path(dest).parent for _, _, dest in result}
    for folder in sorted(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            blocked = next((str(q) for q in (folder, *folder.parents) if q.exists() and not q.is_dir()), None)
            why = f"{blocked!r} is a file, not a folder" if blocked else (e.strerror or str(e))
            raise ArgumentError(f"-o {output}: cannot create the folder {str(folder)!r}: {why}") from None
    return result


_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
"""--format's choices, as Pillow names them."""


def _pair(content: Any, style: Any) -> str:
    styles = ", ".join(map(str, style)) if isinstance(style, tuple) else str(style)
    return f"{content} with {styles}"


def _refuse_overwriting(jobs: list[tuple[Any, Any, str]], inputs: tuple, output: str) -> None:
    """Refuse a destination that is one of the input files (the same path, or the same file
    through a link): writing it would destroy the input."""
    paths, inodes = {}, {}
    for x in inputs:
        if x != STDIO and isinstance(x, (str, os.PathLike)):
            paths[os.path.realpath(x)] = x
            try:
                st = os.stat(x)
                inodes[(st.st_dev, st.st_ino)] = x
            except OSError:  # missing: reported when it is read
                pass
    for _, _, dest in jobs:
        same = paths.get(os.path.realpath(dest))
        if same is None:
            try:
                st = os.stat(dest)
                same = inodes.get((st.st_dev, st.st_ino))
            except OSError:  # not there yet
                pass
        if same is not None:
            raise ArgumentError(f"-o {output}: the result {dest} would overwrite the input {same}; write it elsewhere")


def _write(image, dest: str, fmt: str | None) -> None:
    from .image import save_image

    if dest != STDIO:
        save_image(image, dest)
        return
    buf = io.BytesIO()
    fmt = (fmt or "png").replace("jpg", "jpeg").upper()
    image.save(buf, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    sys.stdout.buffer.write(buf.getvalue())
    sys.stdout.buffer.flush()


def _cmd_transfer(a: argparse.Namespace, contents: list, styles: list) -> int:
    from tqdm.auto import tqdm

    import stylekit

    from .device import resolve_device, resolve_dtype
    from .image import load_image

    opts = _transfer_options(a)
    resolve_dtype(resolve_device(a.device), a.dtype)  # a bad --device/--dtype fails before any work
    if sum(x == STDIO for x in contents + styles) > 1:
        raise ArgumentError("- (stdin) can stand for one image only")
    combine = _combined_options(a, styles)  # style_weights= / masks=, or {} for every content x every style
    inputs = (*contents, *styles, *(getattr(a, "mask", None) or []))
    jobs = _destinations(contents, [tuple(styles)] if combine else styles, a.output, a.format, inputs)
    if a.json and a.output == STDIO:
        raise ArgumentError("--json prints on stdout, so it cannot go with -o - (stdout)")
    run: Callable[..., Any] = stylekit.transfer
    if a.decoder:  # validated (keys, shapes, dtypes) before any picture is read
        run = stylekit.StyleTransfer(a.device, a.dtype, model=_model_with_decoder(a.decoder))
    stdin = {STDIO: _read_stdin("content" if STDIO in contents else "style")} if STDIO in contents + styles else {}
    # read each style once (a bad style stops everything); contents are read one by one
    style_imgs = {s: load_image(stdin.get(s, s), name=f"style {s}") for s in styles}
    show = a.progress if a.progress is not None else (None if len(jobs) > 1 else False)
    inner = a.progress if a.progress is not None else (len(jobs) == 1 and sys.stderr.isatty())  # steps, tiles
    results, errors = [], []
    log = sys.stderr if (a.json or a.output == STDIO) else sys.stdout
    for c, s, dest in tqdm(jobs, disable=(None if show is None else not show), unit="image", desc="transfer", file=sys.stderr):
        t0 = time.perf_counter()
        try:
            kw = {} if a.decoder else {"device": a.device, "dtype": a.dtype}
            style = [style_imgs[x] for x in s] if combine else style_imgs[s]
            out = run(stdin.get(c, c), style, a.alpha, size=a.size, progress=inner, **kw, **opts, **combine)
            _write(out, dest, a.format)
        except (ImageError, ShapeError) as e:  # one bad picture: report it, go on with the others
            if len(jobs) == 1:
                raise
            errors.append({"content": str(c), "style": _names(s), "error": str(e)})
            print(f"stylekit: error: {e}", file=sys.stderr)
            continue
        results.append({"content": str(c), "style": _names(s), "output": dest, "width": out.width, "height": out.height,
                        "seconds": round(time.perf_counter() - t0, 3)})  # fmt: skip
        if not a.json and dest != STDIO and len(jobs) <= 10:
            print(f"wrote {dest} ({out.width}x{out.height})", file=log)
    if a.json:
        print(json.dumps({"results": results, "errors": errors}, indent=2))
    elif len(jobs) > 10:
        print(f"wrote {len(results)} images to {a.output}", file=log)
    return 2 if errors else 0


def _count(n: int, noun: str, verb: str = "") -> str:
    """``_count(1, "style", "is")`` -> "is 1 style", ``_count(2, "style", "is")`` -> "are 2 styles"."""
    words = f"{n} {noun}" + ("" if n == 1 else "s")
    return f"{verb if n == 1 else 'are'} {words}" if verb else words


def _names(style: Any) -> str | list[str]:
    """A style for --json: its path, or the list of paths of a mix / of regions."""
    return [str(x) for x in style] if isinstance(style, tuple) else str(style)


def _combined_options(a: argparse.Namespace, styles: list) -> dict[str, Any]:
    """``style_weights=`` or ``masks=`` (masks read and checked now) for --style-weights / --mask."""
    weights, masks = getattr(a, "style_weights", None), getattr(a, "mask", None)
    if weights is not None and masks is not None:
        raise ArgumentError("--style-weights and --mask do not go together: with masks each style paints its own region")
    if weights is not None:
        if len(weights) != len(styles):
            raise ArgumentError(f"--style-weights has {_count(len(weights), 'weight')} but there {_count(len(styles), 'style', 'is')} "
                                f"({', '.join(map(str, styles))}): give one weight per style")  # fmt: skip
        return {"style_weights": weights}
    if masks is not None:
        from .masks import read_mask

        if len(masks) != len(styles):
            raise ArgumentError(f"--mask was given {len(masks)} times but there {_count(len(styles), 'style', 'is')} "
                                f"({', '.join(map(str, styles))}): give one mask per style, in the same order")  # fmt: skip
        return {"masks": [read_mask(m, name=f"--mask {m}") for m in masks]}
    return {}


def _model_with_decoder(path: str):
    """The shipped encoder with the decoder of ``path`` (``--decoder``)."""
    from .decoder import Decoder
    from .encoder import VGGEncoder
    from .model import AdaINModel

    return AdaINModel(VGGEncoder.from_pretrained(), Decoder.from_file(path))


def _cmd_video(a: argparse.Namespace) -> None:
    from .video import Stabilization, stylize_video

    stab: bool | Stabilization = not a.no_stabilize
    tuned = {k: getattr(a, k) for k in ("momentum", "blend", "threshold") if getattr(a, k) is not None}
    if tuned:
        if a.no_stabilize:
            raise ArgumentError(f"--{'/--'.join(tuned)} and --no-stabilize contradict each other")
        stab = Stabilization(**tuned)
    if len(a.style) > 1:  # (a second -s would otherwise silently replace the first)
        raise ArgumentError(f"stylekit video takes one style, but -s was given {len(a.style)} times")
    model = _model_with_decoder(a.decoder) if a.decoder else None
    r = stylize_video(a.input, a.output, a.style[0], a.alpha, size=a.size, stabilize=stab, audio=not a.no_audio,
                      codec=a.codec, crf=a.crf, device=a.device, dtype=a.dtype, model=model, progress=a.progress)  # fmt: skip
    if a.json:
        print(json.dumps({**r.__dict__, "path": str(r.path), "seconds": round(r.seconds, 3)}, indent=2))
    else:
        print(f"wrote {r.path}: {r.frames} frames {r.width}x{r.height} at {r.fps:g} fps, audio {r.audio or 'none'}, "
              f"{r.seconds:.1f} s; mean frame-to-frame change {r.flicker:.4f}")  # fmt: skip


def _cmd_train(a: argparse.Namespace) -> None:
    from .train import train

    r = train(
        content_dir=a.content_dir, style_dir=a.style_dir, out=a.out, steps=a.steps, batch_size=a.batch_size,
        crop=a.crop, warmup_crop=a.warmup_crop, warmup_steps=a.warmup_steps, lr=a.lr, lr_warmup=a.lr_warmup,
        style_weight=a.style_weight, grid_weight=a.grid_weight, workers=a.workers, seed=a.seed, checkpoint_every=a.checkpoint_every,
        sample_every=a.sample_every, init=a.init, resume=not a.no_resume, compile=a.compile,
        device=a.device, dtype=a.dtype,
    )  # fmt: skip
    grid = f", grid {r.grid_loss:.3g}" if a.grid_weight else ""
    print(f"step {r.step}: loss {r.loss:.4f} (content {r.content_loss:.4f}, style {r.style_loss:.4f}{grid}); "
          f"decoder in {r.decoder_path}; {r.skipped_files} unreadable files skipped")  # fmt: skip


def _cmd_export(a: argparse.Namespace) -> None:
    from .decoder import Decoder
    from .export import DEFAULT_OPSET, DYNAMO_MIN_OPSET, export_onnx, export_torchscript

    torchscript = a.output and Path(a.output).suffix.lower() in (".pt", ".pth", ".ts", ".torchscript")
    fmt = a.format or ("torchscript" if torchscript else "onnx")
    opset = a.opset if a.opset is not None else (DYNAMO_MIN_OPSET if a.dynamo else DEFAULT_OPSET)
    output = a.output or ("stylekit.onnx" if fmt == "onnx" else "stylekit.pt")
    model = Decoder.from_file(a.decoder) if a.decoder else None
    t0 = time.perf_counter()
    if fmt == "onnx":
        path = export_onnx(output, opset=opset, model=model, dynamo=a.dynamo)
    else:
        path = export_torchscript(output, model=model)
    print(f"wrote {path} ({fmt}, {path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")


# --------------------------------------------------------------------------- info


def info() -> dict[str, Any]:
    """Versions, device, dtype and the shipped weights with their recorded and actual sha256."""
    import importlib.metadata as md
    import platform

    from . import __version__
    from .device import cpu_has_fast_bf16, cpu_has_fast_fp16, resolve_device, resolve_dtype
    from .weights import DECODER, ENCODER, load_file, sha256_of

    versions: dict[str, str | None] = {"stylekit": __version__, "python": platform.python_version()}
    for dist in ("torch", "torchvision", "numpy", "pillow", "safetensors", "av", "onnx", "onnxruntime"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    dev = resolve_device("auto")
    weights = []
    for w in (ENCODER, DECODER):
        entry: dict[str, Any] = {"name": w.name, "what": w.what, "path": str(w.path), "present": w.exists(),
                                 "sha256_recorded": w.sha256, "sha256": None, "ok": False, "metadata": {}}  # fmt: skip
        if w.exists():
            entry["sha256"] = sha256_of(w.path.read_bytes())
            entry["ok"] = entry["sha256"] == w.sha256
            if entry["ok"]:
                entry["metadata"] = {k: v for k, v in load_file(w.path)[1].items() if k != "format"}
        weights.append(entry)
    return {"versions": versions, "platform": platform.platform(), "device": str(dev),
            "dtype": str(resolve_dtype(dev)).replace("torch.", ""),
            "cpu_bf16_hardware": cpu_has_fast_bf16(), "cpu_fp16_hardware": cpu_has_fast_fp16(),
            "weights": weights}  # fmt: skip


def _cmd_info(a: argparse.Namespace) -> None:
    d = info()
    if a.json:
        print(json.dumps(d, indent=2))
        return
    print("  ".join(f"{k} {v}" for k, v in d["versions"].items() if v is not None))
    print(f"platform: {d['platform']}")
    print(f"device: {d['device']}  dtype: {d['dtype']}  CPU bf16 hardware (AMX / AVX-512-BF16): "
          f"{'yes' if d['cpu_bf16_hardware'] else 'no (bf16 on the CPU is emulated, ~100x slower than fp32)'}")
    for w in d["weights"]:
        state = "MISSING" if not w["present"] else ("sha256 ok" if w["ok"] else f"sha256 MISMATCH (file {w['sha256']})")
        shown = [f"{k}={w['metadata'][k]}" for k in ("step", "loss", "date") if k in w["metadata"]]
        meta = "  (" + ", ".join(shown) + ")" if shown else ""
        print(f"{w['what']}: {w['path']} ({state}) sha256 {w['sha256_recorded']}{meta}")


# --------------------------------------------------------------------------- main


def _run(a: argparse.Namespace) -> int:
    if a.command in ("transfer", "demo"):
        _check_preserve_color(a)
    if a.command == "transfer":
        if a.style:
            contents, style_specs = a.inputs, a.style
        elif len(a.inputs) >= 2:
            contents, style_specs = a.inputs[:-1], a.inputs[-1:]
        else:
            raise ArgumentError("transfer needs a content and a style: stylekit transfer CONTENT... STYLE -o OUT")
        contents = [x for spec in contents for x in _expand(spec, "content")]
        styles = [x for spec in style_specs for x in _expand(spec, "style")]
        return _cmd_transfer(a, contents, styles)
    if a.command == "demo":
        a.format, a.json, a.progress = None, False, None  # progress: the Gatys steps' bar on a terminal
        return _cmd_transfer(a, [DEMO_CONTENT], [DEMO_STYLE])
    {"video": _cmd_video, "train": _cmd_train, "export": _cmd_export, "info": _cmd_info}[a.command](a)
    return 0


def _format_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> str:
    """A printed warning as one line, like the errors (recorded warnings are not affected)."""
    return f"stylekit: warning: {message}".replace("\n", " ") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the ``stylekit`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    a = build_parser().parse_args(argv)
    if os.environ.get("STYLEKIT_MALLOC", "tuned") != "default":
        from .device import tune_malloc

        tune_malloc()  # the command owns its process: keep large freed blocks (see tune_malloc)
    format_warning, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return _run(a)
    except KeyboardInterrupt:
        print("stylekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (stylekit info | head): not an error worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:  # noqa: BLE001 - every error is one line unless --debug
        if a.debug:
            raise
        known = isinstance(e, (StylekitError, OSError))
        msg = str(e) if known else f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)"
        if getattr(a, "json", False):
            print(json.dumps({"error": msg}))
        print(f"stylekit: error: {msg}".replace("\n", " "), file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = format_warning
