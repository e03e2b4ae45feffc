"""Stylise videos frame by frame, with temporal stabilisation against flicker.

AdaIN stylises each frame on its own, so sensor noise and small changes between frames come
out as flicker: the content statistics that AdaIN normalises by jump from frame to frame,
and the decoder turns small input changes into different brush strokes. Two cheap remedies
(:class:`Stabilization`):

1. blending each output with the previous one where the input hardly changed (per pixel,
   after a small blur), so static areas keep their strokes and moving areas follow the picture
   (on by default; it lowers the mean frame-to-frame change by 10-35 % on our test clips, see
   ``docs/measure_flicker.py``);
2. an exponential moving average of the content's relu4_1 channel mean and std across frames,
   so AdaIN normalises every frame of a shot alike (off by default: it did not lower flicker on
   those clips, as AdaIN's per-frame statistics already average over the whole frame).

Both reset at scene cuts.

:func:`stylize_video` reads and writes files through PyAV (``pip install 'stylekit-nst[video]'``),
keeping the frame rate and timestamps and the audio track; :class:`FrameStylizer` and
:func:`stylize_frames` work on frames in memory (numpy arrays, tensors, PIL images) and need
no PyAV.

Example:
    >>> from stylekit.video import stylize_video
    >>> stylize_video("in.mp4", "out.mp4", "painting.jpg", alpha=0.8)  # doctest: +SKIP
    VideoResult(path=PosixPath('out.mp4'), frames=240, fps=24.0, ...)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._deps import require
from .api import STYLE_SIZE, Style, StyleTransfer
from .device import autocast
from .errors import ArgumentError, ShapeError, StylekitError
from .image import ImageLike, check_size_arg, crop_padding, is_url, pad_to_multiple, read_image, resize_short_side
from .model import AdaINModel
from .ops import mean_std

__all__ = [
    "Stabilization", "FrameStylizer", "VideoError", "VideoResult", "stylize_frames", "stylize_video",
    "mean_frame_difference",
]  # fmt: skip

MAX_CRF = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libvpx": 63}
"""The largest ``crf`` (constant quality; larger is worse) of each encoder that takes one."""
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
"""Output names :func:`stylize_video` refuses: they would make FFmpeg write a numbered picture sequence."""


class VideoError(StylekitError, ValueError):
    """A video file could not be read or written."""


@dataclass(frozen=True)
class Stabilization:
    """How :class:`FrameStylizer` keeps consecutive frames consistent.

    Attributes:
        momentum: weight of the running average when updating the content's relu4_1 channel
            mean and std with a new frame, in [0, 1); 0 (the default) normalises every frame by
            its own statistics, as a plain frame loop does.
        blend: largest weight of the previous output in a pixel whose input did not change,
            in [0, 1); 0 turns output blending off.
        threshold: change of a pixel between two input frames (mean over RGB in [0, 1], after a
            5x5 blur) at and above which nothing is blended; the weight falls linearly from
            ``blend`` at no change to 0 at ``threshold``.
        scene_cut: mean change of the whole frame above which the history is dropped (a new shot).

    Example:
        >>> Stabilization(momentum=0.5).blend
        0.5
    """

    momentum: float = 0.0
    blend: float = 0.5
    threshold: float = 0.08
    scene_cut: float = 0.2

    def __post_init__(self) -> None:
        for name in ("momentum", "blend"):
            v = getattr(self, name)
            if not (isinstance(v, Real) and 0.0 <= float(v) < 1.0):
                raise ArgumentError(f"Stabilization.{name} must be in [0, 1), got {v!r}")
        for name in ("threshold", "scene_cut"):
            v = getattr(self, name)
            if not (isinstance(v, Real) and 0.0 < float(v) <= 1.0):
                raise ArgumentError(f"Stabilization.{name} must be in (0, 1], got {v!r}")


def _stabilization(stabilize: bool | Stabilization) -> Stabilization | None:
    if isinstance(stabilize, Stabilization):
        return stabilize
    if isinstance(stabilize, (bool, np.bool_)):
        return Stabilization() if stabilize else None
    raise ArgumentError(f"stabilize must be True, False or a Stabilization, got {stabilize!r}")


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ArgumentError(f"alpha must be a number in [0, 1], got {alpha!r}")
    return float(alpha)


class FrameStylizer:
    """Stylises the frames of a video in order, carrying the stabilisation state from frame to frame.

    Args:
        style: the style image (path, PIL image, array, tensor) or a :class:`~stylekit.Style`.
        alpha: style strength in [0, 1].
        size: resize every frame so its short side is ``size`` px (and the style likewise, as
            :func:`stylekit.transfer` does); ``None`` keeps the frame size.
        stabilize: ``True`` (default :class:`Stabilization`), ``False`` (a plain frame loop:
            every frame on its own, with the maths of :func:`stylekit.transfer`; the two agree within
            1/255 per channel) or a :class:`Stabilization`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... as for :class:`~stylekit.StyleTransfer`.
        dtype: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        model: an :class:`~stylekit.AdaINModel` to use instead of the shipped one.

    Calling it with a frame (H x W x 3 uint8 array, PIL image, (3, H, W) tensor, path...)
    returns the stylised frame as an H x W x 3 uint8 array. Call :meth:`reset` between videos.

    Example:
        >>> import numpy as np
        >>> fs = FrameStylizer(np.full((32, 32, 3), 200, np.uint8), device="cpu")  # doctest: +SKIP
        >>> fs(np.zeros((48, 64, 3), np.uint8)).shape  # doctest: +SKIP
        (48, 64, 3)
    """

    def __init__(
        self,
        style: ImageLike | Style,
        alpha: float = 1.0,
        *,
        size: int | None = None,
        stabilize: bool | Stabilization = True,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = "auto",
        model: AdaINModel | None = None,
    ) -> None:
        self.alpha = _check_alpha(alpha)
        self.size = check_size_arg(size)
        self.stabilization = _stabilization(stabilize)
        self._style: Style | Tensor = style.check("style") if isinstance(style, Style) else read_image(style, name="style").tensor
        self._st = StyleTransfer(device, dtype, model=model)
        self._style_stats: tuple[Tensor, Tensor] | None = None
        self.reset()

    @property
    def device(self) -> torch.device:
        return self._st.device

    @property
    def dtype(self) -> torch.dtype:
        return self._st.dtype

    def reset(self) -> None:
        """Forget the previous frames (start of a new video)."""
        self._prev_in: Tensor | None = None
        self._prev_out: Tensor | None = None
        self._mean: Tensor | None = None
        self._std: Tensor | None = None

    def _encode_style(self, short_side: int) -> tuple[Tensor, Tensor]:
        if isinstance(self._style, Style):
            s = self._style
        else:  # the rule of stylekit.transfer: the style at the frame's scale, at most STYLE_SIZE
            size = self.size
            if size is None:
                cap = min(STYLE_SIZE, max(short_side, 64))
                size = cap if min(self._style.shape[-2:]) > cap else None
            s = self._st.encode_style(self._style, size=size)
        return s.mean.to(self.device), s.std.to(self.device)

    def __call__(self, frame: ImageLike) -> np.ndarray:
        x = read_image(frame, name="frame").tensor
        if x.shape[0] != 1:
            raise ShapeError(f"frame must be a single image, got a batch of {x.shape[0]}")
        if self.size is not None:
            x = resize_short_side(x, self.size)
        x = x.to(self.device)
        if self._style_stats is None:
            self._style_stats = self._encode_style(min(x.shape[-2:]))
        with torch.inference_mode():
            y = self._stylize(x)
        return y[0].permute(1, 2, 0).mul(255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()

    def _stylize(self, x: Tensor) -> Tensor:
        stab, model, style = self.stabilization, self._st.model, self._style_stats
        assert style is not None
        xp, pads = pad_to_multiple(x, 8)
        xp = xp.contiguous(memory_format=torch.channels_last)
        prev = self._prev_in
        new_shot = prev is None or prev.shape != x.shape or stab is None or float((x - prev).abs().mean()) > stab.scene_cut
        with autocast(self.device, self.dtype):
            if stab is None:
                y = model.stylize(xp, style, self.alpha)  # the maths of stylekit.transfer (within rounding)
            else:
                f = model.encoder.encode(xp)
                mean, std = mean_std(f)
                if new_shot or self._mean is None or self._std is None:
                    self._mean, self._std = mean, std
                else:
                    self._mean = torch.lerp(mean, self._mean, stab.momentum)
                    self._std = torch.lerp(std, self._std, stab.momentum)
                scale = style[1] / self._std
                t = (f.float() * scale + (style[0] - self._mean * scale)).to(f.dtype)
                if self.alpha < 1.0:
                    t = f if self.alpha == 0.0 else torch.lerp(f, t, self.alpha)
                y = model.decoder(t)
        y = crop_padding(y, pads).float().clamp(0.0, 1.0)
        if stab is not None and stab.blend > 0 and not new_shot and prev is not None and self._prev_out is not None:
            change = (x - prev).abs().mean(dim=1, keepdim=True)
            change = F.avg_pool2d(change, 5, stride=1, padding=2, count_include_pad=False)
            weight = stab.blend * (1.0 - change / stab.threshold).clamp(0.0, 1.0)
            y = torch.lerp(y, self._prev_out, weight)
        self._prev_in, self._prev_out = x, y
        return y


def stylize_frames(
    frames: Iterable[ImageLike],
    style: ImageLike | Style,
    alpha: float = 1.0,
    **kwargs: Any,
) -> Iterator[np.ndarray]:
    """Stylise a sequence of frames in order; yields H x W x 3 uint8 arrays.

    Keyword arguments are those of :class:`FrameStylizer` (``size``, ``stabilize``, ``device``,
    ``dtype``, ``model``).

    Example:
        >>> clip = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(3)]
        >>> outs = list(stylize_frames(clip, "stylekit/examples/renoir_the_wave_1879_aic81557.jpg"))  # doctest: +SKIP
    """
    stylizer = FrameStylizer(style, alpha, **kwargs)
    for frame in frames:
        yield stylizer(frame)


def mean_frame_difference(frames: Iterable[np.ndarray | Tensor]) -> float:
    """Mean absolute difference between consecutive frames, in [0, 1] units (a flicker measure).

    uint8 arrays are divided by 255; float arrays and tensors are taken as they are (in [0, 1]).
    Returns 0.0 for fewer than two frames.

    Example:
        >>> mean_frame_difference([np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 51, np.uint8)])
        0.2
    """
    total, n, prev = 0.0, 0, None
    for f in frames:
        a = f.detach().float().cpu().numpy() if isinstance(f, Tensor) else np.asarray(f)
        a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
        if prev is not None:
            if prev.shape != a.shape:
                raise ShapeError(f"frames differ in shape: {prev.shape} and {a.shape}")
            total += float(np.abs(a - prev).mean())
            n += 1
        prev = a
    return round(total / n, 12) if n else 0.0


@dataclass
class VideoResult:
    """What :func:`stylize_video` wrote.

    Attributes:
        path: the output file.
        frames: frames written.
        fps: the input's average frame rate (kept).
        width, height: output frame size.
        audio: ``"copied"``, ``"re-encoded"`` (the output container cannot hold the input's
            audio codec) or ``None`` (no audio).
        seconds: wall time.
        flicker: :func:`mean_frame_difference` of the output frames.
    """

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    audio: str | None
    seconds: float
    flicker: float


def _pick_pix_fmt(stream: Any) -> str:
    formats = [f.name for f in (stream.codec_context.codec.video_formats or [])]
    for name in ("yuv420p", "rgb24"):
        if not formats or name in formats:
            return name
    return formats[0]


def stylize_video(
    src: str | Path,
    dst: str | Path,
    style: ImageLike | Style,
    alpha: float = 1.0,
    *,
    size: int | None = None,
    stabilize: bool | Stabilization = True,
    audio: bool = True,
    codec: str | None = None,
    crf: int = 18,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = "auto",
    model: AdaINModel | None = None,
    progress: bool | None = None,
) -> VideoResult:
    """Stylise the video ``src`` into ``dst``, keeping its frame rate, timestamps and audio.

    Args:
        src: input video (anything FFmpeg reads: .mp4, .mov, .mkv, .webm, .gif, ...).
        dst: output video; the container comes from the extension (.mp4, .mkv, .mov, .webm, ...).
            Written to a temporary file beside it and renamed when complete.
        style: style image or :class:`~stylekit.Style`.
        alpha: style strength in [0, 1].
        size: short side of the output frames in px (``None``: the input's size). H.264 and
            VP9 need even sides: an odd last row or column is dropped.
        stabilize: ``True``, ``False`` (plain frame loop) or a :class:`Stabilization`.
        audio: keep the first audio track (copied as is where the container allows, else re-encoded).
        codec: video encoder (default: the container's, e.g. H.264 for .mp4, VP9 for .webm).
        crf: quality for H.264 / H.265 (0-51) and VP9 (0-63): lower is better and bigger; 18 is
            visually lossless. Other encoders ignore it.
        device: as for :class:`FrameStylizer`.
        dtype: as for :class:`FrameStylizer`.
        model: as for :class:`FrameStylizer`.
        progress: show a tqdm progress bar (``None``: when stderr is a terminal).

    Returns:
        A :class:`VideoResult`.

    Raises:
        stylekit.MissingDependencyError: PyAV is not installed.
        VideoError: ``src`` is missing or not a video, or ``dst`` cannot be written.
        ArgumentError, ImageError: bad ``alpha``, ``size``, ``crf`` or style.
    """
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= max(MAX_CRF.values()):
        raise ArgumentError(f"crf must be an int from 0 to {MAX_CRF['libx264']} (H.264, H.265) or {MAX_CRF['libvpx-vp9']} (VP9), got {crf!r}")
    av = require("av", "video", "stylekit.video")
    from tqdm.auto import tqdm

    if is_url(str(src)):  # checked before Path() folds the "//"
        raise VideoError(f"src: {str(src)[:200]!r} is a URL; stylekit reads local files only (download it first)")
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        raise VideoError(f"src: {str(src)!r} is a directory, not a video file")
    if not src.is_file():
        raise VideoError(f"src: no such file: {str(src)!r}")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ArgumentError("dst must not be the input file")
    if dst.suffix.lower() in PICTURE_SUFFIXES:  # FFmpeg would pick its image-sequence writer and fail at the first frame
        raise VideoError(f"dst: {str(dst)!r} is a picture file name; write the video to .mp4, .mkv, .webm or .mov "
                         "(for one picture, use stylekit.transfer)")  # fmt: skip
    t0 = time.perf_counter()
    stylizer = FrameStylizer(style, alpha, size=size, stabilize=stabilize, device=device, dtype=dtype, model=model)
    try:
        inp = av.open(str(src))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"src: cannot open {str(src)!r} as a video ({e})") from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    try:
        with inp:
            if not inp.streams.video:
                raise VideoError(f"src: {str(src)!r} has no video stream")
            result = _transcode(av, tqdm, inp, tmp, dst, stylizer, audio, codec, crf, progress)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    result.path, result.seconds = dst, time.perf_counter() - t0
    return result


def _transcode(av, tqdm, inp, tmp: Path, dst: Path, stylizer: FrameStylizer, audio: bool, codec, crf: int, progress) -> VideoResult:
    vin = inp.streams.video[0]
    vin.thread_type = "AUTO"
    ain = inp.streams.audio[0] if audio and inp.streams.audio else None
    rate = vin.average_rate or vin.guessed_rate or Fraction(25)
    try:
        out = av.open(str(tmp), "w")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"dst: cannot write a video to {str(dst)!r} ({e})") from None
    with out:
        try:
            vout = out.add_stream(codec or out.default_video_codec, rate=rate)
        except (ValueError, av.error.FFmpegError) as e:  # an unknown encoder, or one the container cannot hold
            raise VideoError(f"codec: cannot write {codec or out.default_video_codec!r} video into a {dst.suffix} file ({e})") from None
        vout.pix_fmt = _pick_pix_fmt(vout)
        h, w = vin.codec_context.height, vin.codec_context.width
        if stylizer.size is not None:  # the size that resize_short_side will give, computed without pixels
            h, w = resize_short_side(torch.empty(1, 3, h, w, device="meta"), stylizer.size).shape[-2:]
        vout.width, vout.height = w // 2 * 2, h // 2 * 2  # 4:2:0 chroma needs even sides
        name = vout.codec_context.name
        if name in MAX_CRF:
            if crf > MAX_CRF[name]:
                raise ArgumentError(f"crf={crf}: the {name} encoder takes 0 to {MAX_CRF[name]}")
            vout.options = {"crf": str(crf), **({"b:v": "0"} if "vpx" in name else {})}
        time_base = vin.time_base or Fraction(1, 90000)
        vout.codec_context.time_base = time_base
        aout, audio_mode = None, None
        if ain is not None:
            if ain.codec_context.name in out.supported_codecs:
                aout, audio_mode = out.add_stream_from_template(ain), "copied"
            else:
                aout, audio_mode = out.add_stream(out.default_audio_codec, rate=ain.rate), "re-encoded"
        bar = tqdm(total=vin.frames or None, unit="frame", desc="video", disable=(None if progress is None else not progress))
        n, flicker_sum, prev = 0, 0.0, None
        try:
            for packet in inp.demux(*(s for s in (vin, ain) if s is not None)):
                if ain is not None and packet.stream.index == ain.index:
                    _audio_packet(out, packet, aout, audio_mode)
                    continue
                for frame in packet.decode():
                    y = stylizer(frame.to_ndarray(format="rgb24"))
                    if y.shape[0] // 2 != vout.height // 2 or y.shape[1] // 2 != vout.width // 2:
                        raise VideoError(f"src: the frame size changes within the video (frame {n}), which is not supported")
                    y = np.ascontiguousarray(y[: vout.height, : vout.width])
                    if prev is not None:
                        flicker_sum += float(np.abs(y.astype(np.int16) - prev).mean()) / 255.0
                    prev = y.astype(np.int16)
                    of = av.VideoFrame.from_ndarray(y, format="rgb24")
                    of.pts = frame.pts if frame.pts is not None else round(n / (rate * time_base))
                    of.time_base = time_base
                    for p in vout.encode(of):
                        out.mux(p)
                    n += 1
                    bar.update(1)
            for p in vout.encode(None):
                out.mux(p)
            if audio_mode == "re-encoded" and aout is not None:
                for p in aout.encode(None):
                    out.mux(p)
        except av.error.FFmpegError as e:
            raise VideoError(f"video processing failed (writing {str(dst)!r} with the {vout.codec_context.name} codec): {e}") from None
        finally:
            bar.close()
        if n == 0:
            raise VideoError("src: the video has no frames")
    return VideoResult(tmp, n, float(rate), vout.width, vout.height, audio_mode, 0.0, round(flicker_sum / max(n - 1, 1), 6))


def _audio_packet(out, packet, aout, mode: str | None) -> None:
    if mode == "copied":
        if packet.dts is None:  # the demuxer's final flush packet
            return
        packet.stream = aout
        out.mux(packet)
        return
    for frame in packet.decode():
        frame.pts = None
        for p in aout.encode(frame):
            out.mux(p)
