"""Video: temporal stabilisation on frames in memory (no PyAV needed), and files through PyAV
(skipped without ``av``), with a tiny seeded model instead of the shipped decoder.

The flicker measure is the mean absolute difference between consecutive output frames
(:func:`stylekit.video.mean_frame_difference`) on a generated clip: 32 frames of 96x64, a
gradient moving 2 px per frame plus Gaussian noise (sigma 0.03), as a camera would give.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from clips import make_clip, write_clip

import stylekit
from stylekit import ArgumentError, StyleTransfer, _deps
from stylekit.cli import main
from stylekit.video import (
    FrameStylizer,
    Stabilization,
    VideoError,
    mean_frame_difference,
    stylize_frames,
    stylize_video,
)

WAVE = Path(stylekit.__file__).parent / "examples" / "renoir_the_wave_1879_aic81557.jpg"


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return make_clip()


@pytest.fixture(scope="module")
def plain(clip, tiny_model) -> list[np.ndarray]:
    return list(stylize_frames(clip, WAVE, stabilize=False, model=tiny_model, device="cpu", dtype="fp32"))


def test_plain_loop_is_transfer(clip, plain, tiny_model):
    st = StyleTransfer("cpu", "fp32", model=tiny_model)
    for i in (0, 17):
        diff = np.abs(plain[i].astype(int) - st(clip[i], WAVE))
        assert diff.max() <= 1 and diff.mean() < 0.05  # the same maths, 8-bit rounding aside


def test_stabilisation_reduces_flicker(clip, plain, tiny_model):
    stab = list(stylize_frames(clip, WAVE, model=tiny_model, device="cpu", dtype="fp32"))
    d_in, d_plain, d_stab = (mean_frame_difference(x) for x in (clip, plain, stab))
    print(f"mean frame-to-frame difference: input {d_in:.4f}, plain loop {d_plain:.4f}, stabilised {d_stab:.4f}")
    assert d_stab < 0.8 * d_plain
    np.testing.assert_array_equal(stab[0], plain[0])  # the first frame has no history
    # it follows the picture rather than freezing it: closer to its own frame than to the first one
    assert np.abs(stab[-1].astype(int) - plain[-1]).mean() < np.abs(stab[-1].astype(int) - plain[0]).mean()


def test_scene_cut_drops_the_history(clip, tiny_model):
    other = [255 - f for f in make_clip(frames=2, seed=5)]
    fs = FrameStylizer(WAVE, model=tiny_model, device="cpu", dtype="fp32")
    for f in clip[:3]:
        fs(f)
    cut = fs(other[0])
    fresh = FrameStylizer(WAVE, model=tiny_model, device="cpu", dtype="fp32")(other[0])
    np.testing.assert_array_equal(cut, fresh)


def test_each_part_of_the_stabilisation_can_be_turned_off(clip, plain, tiny_model):
    frames = clip[:4]
    off = Stabilization(momentum=0.0, blend=0.0)
    outs = list(stylize_frames(frames, WAVE, stabilize=off, model=tiny_model, device="cpu", dtype="fp32"))
    for a, b in zip(outs, plain[:4]):
        assert np.abs(a.astype(int) - b).max() <= 1  # the same maths, rounding aside


def test_statistics_running_average(clip, plain, tiny_model):
    ema = list(stylize_frames(clip[:4], WAVE, stabilize=Stabilization(momentum=0.9, blend=0.0), model=tiny_model,
                              device="cpu", dtype="fp32"))  # fmt: skip
    np.testing.assert_array_equal(ema[0], plain[0])  # starts from the first frame's own statistics
    later = np.abs(ema[3].astype(int) - plain[3])
    assert 0 < later.mean() < 10  # then lags a little behind the frame's own statistics


def test_size_alpha_and_tensor_frames(tiny_model):
    frames = [torch.rand(3, 40, 60) for _ in range(2)]
    outs = list(stylize_frames(frames, WAVE, 0.5, size=20, model=tiny_model, device="cpu"))
    assert [o.shape for o in outs] == [(20, 30, 3)] * 2 and outs[0].dtype == np.uint8


@pytest.mark.parametrize(
    "kwargs, message",
    [({"momentum": 1.0}, "momentum"), ({"blend": -0.1}, "blend"), ({"threshold": 0}, "threshold"),
     ({"scene_cut": 2.0}, "scene_cut")],
)  # fmt: skip
def test_stabilization_checks_its_fields(kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        Stabilization(**kwargs)


def test_bad_arguments(tiny_model):
    with pytest.raises(ArgumentError, match="alpha"):
        FrameStylizer(WAVE, 1.5, model=tiny_model)
    with pytest.raises(ArgumentError, match="stabilize"):
        FrameStylizer(WAVE, stabilize="yes", model=tiny_model)  # type: ignore[arg-type]
    with pytest.raises(stylekit.ShapeError, match="single image"):
        FrameStylizer(WAVE, model=tiny_model, device="cpu")(torch.rand(2, 3, 32, 32))
    meta = stylekit.Style(torch.zeros(1, 512, 1, 1, device="meta"), torch.ones(1, 512, 1, 1, device="meta"))
    with pytest.raises(stylekit.ShapeError, match=r"style\.mean is on the 'meta' device"):  # not torch's own error
        FrameStylizer(meta, model=tiny_model, device="cpu")


def test_mean_frame_difference():
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 51, np.uint8)
    assert mean_frame_difference([a, b, a]) == pytest.approx(0.2)
    assert mean_frame_difference([a]) == 0.0
    assert mean_frame_difference([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)]) == 1.0
    with pytest.raises(stylekit.ShapeError):
        mean_frame_difference([a, np.zeros((2, 2, 3), np.uint8)])


# ----------------------------------------------------------------------------- files (PyAV)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory, clip) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_clip(path, clip[:12])
    return path


def _read(path: Path):
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"fps": v.average_rate, "audio": [s.codec_context.name for s in c.streams.audio]}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, info


def test_stylize_video_keeps_fps_frames_and_audio(clip_file, tiny_model, tmp_path):
    r = stylize_video(clip_file, tmp_path / "out.mp4", WAVE, model=tiny_model, device="cpu", dtype="fp32", progress=False)
    assert (r.frames, r.fps, r.width, r.height, r.audio) == (12, 12.0, 96, 64, "copied")
    frames, info = _read(r.path)
    assert len(frames) == 12 and frames[0].shape == (64, 96, 3)
    assert info["fps"] == 12 and info["audio"] == ["aac"]
    assert not list(tmp_path.glob(".*partial*"))  # the temporary file was renamed


def test_stylize_video_without_audio_and_resized(clip_file, tiny_model, tmp_path):
    r = stylize_video(clip_file, tmp_path / "small.mkv", WAVE, size=33, audio=False, stabilize=False,
                      model=tiny_model, device="cpu", progress=False)  # fmt: skip
    assert (r.width, r.height, r.audio) == (50, 32, None)  # 50x33 cut to even sides for 4:2:0
    frames, info = _read(r.path)
    assert frames[0].shape == (32, 50, 3) and info["audio"] == []


def test_video_errors(tmp_path, tiny_model):
    pytest.importorskip("av")
    with pytest.raises(VideoError, match="no such file"):
        stylize_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", WAVE, model=tiny_model)
    with pytest.raises(VideoError, match="'https://example.com/v.mp4' is a URL; stylekit reads local files only"):
        stylize_video("https://example.com/v.mp4", tmp_path / "o.mp4", WAVE, model=tiny_model)
    with pytest.raises(VideoError, match="is a directory, not a video file"):
        stylize_video(tmp_path, tmp_path / "o.mp4", WAVE, model=tiny_model)
    with pytest.raises(VideoError, match=r"'.*o\.JPG' is a picture file name; write the video to \.mp4"):
        stylize_video(WAVE, tmp_path / "o.JPG", WAVE, model=tiny_model)  # checked before src is opened
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(VideoError, match="junk.mp4"):
        stylize_video(junk, tmp_path / "o.mp4", WAVE, model=tiny_model)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    "codec, message",
    [
        ("nosuchcodec", r"codec: cannot write 'nosuchcodec' video into a \.mp4 file \(.*nosuchcodec"),
        ("rawvideo", r"codec: cannot write 'rawvideo' video into a \.mp4 file \(.*does not support"),
        ("mjpeg", r"video processing failed \(writing '.*o\.mp4' with the mjpeg codec\)"),
    ],
)
def test_codec_errors_are_video_errors(clip_file, tiny_model, tmp_path, codec, message):
    """An encoder FFmpeg does not have, one the container cannot hold, or one that refuses the
    frames: a VideoError naming the codec (was: "internal error: UnknownCodecError" in the CLI)."""
    with pytest.raises(VideoError, match=message):
        stylize_video(clip_file, tmp_path / "o.mp4", WAVE, codec=codec, model=tiny_model, device="cpu", dtype="fp32", progress=False)
    assert list(tmp_path.iterdir()) == []  # no partial file left


@pytest.mark.parametrize("crf, message", [(99, "crf must be an int from 0 to 51"), (True, "crf must be"), (1.5, "crf must be"),
                                          (60, "crf=60: the libx264 encoder takes 0 to 51")])  # fmt: skip
def test_crf_out_of_range(clip_file, tiny_model, tmp_path, crf, message):
    with pytest.raises(ArgumentError, match=message):
        stylize_video(clip_file, tmp_path / "o.mp4", WAVE, crf=crf, model=tiny_model, device="cpu", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_pyav_names_the_extra(monkeypatch, tmp_path):
    def no_av(name, *a):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_deps.importlib, "import_module", no_av)
    with pytest.raises(_deps.MissingDependencyError, match=r"stylekit-nst\[video\]"):
        stylize_video(tmp_path / "in.mp4", tmp_path / "o.mp4", WAVE)


def test_cli_video(clip_file, tiny_model, tmp_path, capsys):
    dec = tmp_path / "dec.safetensors"
    tiny_model.decoder.save(dec, dtype=torch.float32)
    out = tmp_path / "cli.mp4"
    argv = ["video", str(clip_file), "-o", str(out), "--style", str(WAVE), "--decoder", str(dec), "--device", "cpu",
            "--dtype", "fp32", "--blend", "0.6", "--json", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["path"] == str(out) and r["frames"] == 12 and r["audio"] == "copied" and r["flicker"] > 0
    assert main(["video", str(clip_file), "-o", str(out), "--style", str(WAVE), "--no-stabilize", "--blend", "0.5"]) == 2
    assert "contradict" in capsys.readouterr().err
    url = "https://example.com/v.mp4"
    assert main(["video", url, "-o", str(tmp_path / "u.mp4"), "--style", str(WAVE), "--decoder", str(dec)]) == 2
    assert f"src: '{url}' is a URL" in capsys.readouterr().err  # as typed, not folded by a Path
    assert main(["video", str(clip_file), "-o", str(tmp_path / "two.mp4"), "-s", str(WAVE), "-s", str(WAVE)]) == 2
    assert "stylekit video takes one style, but -s was given 2 times" in capsys.readouterr().err
