"""Generated video clips for the tests: frames in memory, and files written through PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def make_clip(frames: int = 32, w: int = 96, h: int = 64, noise: float = 0.03, seed: int = 0) -> list[np.ndarray]:
    """A moving gradient plus noise, as H x W x 3 uint8 frames."""
    rng = np.random.default_rng(seed)
    xs, ys = np.arange(w)[None, :], np.arange(h)[:, None]
    out = []
    for i in range(frames):
        g = (xs + 2 * i) / (w + 2 * frames) + 0 * ys
        img = np.stack([g, ys / h + 0 * xs, 1 - g], axis=-1)
        out.append((np.clip(img + rng.normal(0, noise, img.shape), 0, 1) * 255).round().astype(np.uint8))
    return out


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 12, audio: bool = True) -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p"
        a = None
        if audio:
            a = out.add_stream("aac", rate=16000)
            a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            n = 16000 * len(frames) // fps
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)[None]
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k : k + 1024]), format="flt", layout="mono")
                af.sample_rate, af.pts = 16000, k
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)
