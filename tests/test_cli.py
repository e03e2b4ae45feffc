"""The ``stylekit`` command: ``main([...])`` in process (with a tiny seeded model instead of the
shipped decoder) and a few real subprocesses (``python -m stylekit``) for exit codes, stdin/stdout
and one-line errors."""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylekit
from stylekit import AdaINModel, Decoder, VGGEncoder, api
from stylekit.cli import DEMO_SIZE, main
from stylekit.weights import DECODER

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(stylekit.__file__).parent / "examples"
CAT, WAVE = EXAMPLES / "chelsea_cat.jpg", EXAMPLES / "renoir_the_wave_1879_aic81557.jpg"
needs_decoder = pytest.mark.skipif(not DECODER.exists(), reason="the shipped decoder weights are not there yet")


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tiny_model: AdaINModel) -> AdaINModel:
    """stylekit.transfer() builds the tiny model instead of loading the shipped decoder."""
    monkeypatch.setattr(api, "_MODELS", {})
    monkeypatch.setattr(api, "_build_model", lambda device: api._prepare(tiny_model, device))
    return tiny_model


def _img(path: Path, w: int = 40, h: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def imgs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "photos").mkdir()
    (tmp_path / "paintings").mkdir()
    return {
        "a": _img(tmp_path / "photos" / "a.png", 40, 32, 0),
        "b": _img(tmp_path / "photos" / "b.jpg", 24, 36, 1),
        "s1": _img(tmp_path / "paintings" / "s1.png", 32, 32, 2),
        "s2": _img(tmp_path / "paintings" / "s2.png", 48, 32, 3),
    }


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- transfer in process


def test_transfer_one_file(tiny, imgs, tmp_path, capsys):
    out = tmp_path / "out" / "x.jpg"
    assert main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(out), "--alpha", "0.5", "--device", "cpu"]) == 0
    assert Image.open(out).size == (40, 32)
    assert f"wrote {out} (40x32)" in capsys.readouterr().out


def test_transfer_size(tiny, imgs, tmp_path):
    out = tmp_path / "x.png"
    assert main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(out), "--size", "16"]) == 0
    assert Image.open(out).size == (20, 16)


def test_contents_times_styles_json(tiny, imgs, tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["transfer", str(tmp_path / "photos"), "--style", str(tmp_path / "paintings" / "*.png"),
                 "-o", str(out), "--json", "--format", "png"])  # fmt: skip
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["errors"] == []
    names = sorted(Path(r["output"]).name for r in res["results"])
    assert names == ["a__s1.png", "a__s2.png", "b__s1.png", "b__s2.png"]
    for r in res["results"]:
        assert Image.open(r["output"]).size == (r["width"], r["height"])
    assert {(r["width"], r["height"]) for r in res["results"]} == {(40, 32), (24, 36)}


def test_many_contents_one_style_keeps_names(tiny, imgs, tmp_path):
    out = tmp_path / "styled"
    assert main(["transfer", str(imgs["a"]), str(imgs["b"]), str(imgs["s2"]), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg"]


def test_progress_bar(tiny, imgs, tmp_path, capsys):
    assert main(["transfer", str(imgs["a"]), str(imgs["b"]), str(imgs["s1"]), "-o", str(tmp_path / "o"), "--progress"]) == 0
    assert "2/2" in capsys.readouterr().err


@pytest.mark.parametrize("flag, shown", [("--progress", True), ("--no-progress", False), (None, False)])
def test_tile_progress_bar(tiny, tmp_path, capsys, monkeypatch, flag, shown):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    big = _img(tmp_path / "big.png", 296, 128)  # --tile 256: two tiles
    args = ["transfer", str(big), str(_img(tmp_path / "s.png", 32, 32)), "-o", str(tmp_path / "o.png"), "--tile", "256"]
    assert main(args + ([flag] if flag else [])) == 0  # default: on a terminal only (pytest's stderr is not one)
    assert ("tiles (2 x 2 passes)" in capsys.readouterr().err) == shown


def test_stdin_to_stdout(tiny, imgs, monkeypatch, capsysbinary):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(imgs["a"].read_bytes())))
    assert main(["transfer", "-", str(imgs["s1"]), "-o", "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert Image.open(io.BytesIO(out)).format == "PNG"
    assert Image.open(io.BytesIO(out)).size == (40, 32)
    assert b"wrote" not in out


@pytest.mark.parametrize(
    ("data", "role", "message"),
    [
        (b"", "content", "content: nothing on standard input"),
        (b"GIF89a\x10\x00", "content", "content: the data given (8 bytes) is not an image"),
        (None, "content", "content: the data given (100 bytes) is truncated or incomplete"),
        (None, "style", "style -: the data given (100 bytes) is truncated or incomplete"),
    ],
    ids=["empty", "not-an-image", "truncated-header", "truncated-style"],
)
def test_bad_stdin_is_one_line_naming_the_argument(tiny, imgs, monkeypatch, capsys, data, role, message):
    """What comes on stdin gets every check of a file (a header cut short used to print Pillow's
    bare "Truncated File Read")."""
    jpeg = io.BytesIO()
    Image.open(imgs["a"]).save(jpeg, format="JPEG")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(jpeg.getvalue()[:100] if data is None else data)))
    args = ["-", str(imgs["s1"])] if role == "content" else [str(imgs["a"]), "-"]
    assert main(["transfer", *args, "-o", "-"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"stylekit: error: {message}"), line


def test_one_bad_image_in_a_batch(tiny, imgs, tmp_path, capsys):
    bad = tmp_path / "photos" / "c.png"
    bad.write_bytes(b"not an image")
    code = main(["transfer", str(tmp_path / "photos"), str(imgs["s1"]), "-o", str(tmp_path / "o"), "--json"])
    assert code == 2
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert len(res["results"]) == 2 and len(res["errors"]) == 1
    assert "c.png" in res["errors"][0]["error"]
    assert "c.png" in _one_line(captured.err)


@pytest.mark.parametrize(
    "args, message",
    [
        (["transfer", "nope.jpg", "{s1}", "-o", "{tmp}/x.jpg"], "no such file"),
        (["transfer", "https://example.com/a.jpg?w=2", "{s1}", "-o", "{tmp}/x.jpg"], "'https://example.com/a.jpg?w=2' is a URL"),
        (["transfer", "{a}", "-o", "{tmp}/x.jpg"], "needs a content and a style"),
        (["transfer", "{tmp}/photos/*.gif", "{s1}", "-o", "{tmp}/o"], "no files match"),
        (["transfer", "{a}", "{b}", "{s1}", "-o", "-"], "takes one result"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.xyz"], "-o {tmp}/x.xyz: unknown image file extension"),
        (["transfer", "{a}", "{b}", "{s1}", "-o", "{s2}"], "-o {s2}: 2 results need a folder, and '{s2}' is a file"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.jpg", "--device", "tpu"], "device"),
        (["transfer", "{a}", "{s1}", "-o", "-", "--json"], "--json"),
        (["transfer", "-", "-", "-o", "{tmp}/x.jpg"], "one image only"),
        (["transfer", "{a}", "-s", "{s1}", "-s", "{s2}", "-o", "{tmp}/x.jpg", "--style-weights", "1,2,3"],
         "--style-weights has 3 weights but there are 2 styles"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.jpg", "--mask", "{a}", "--mask", "{b}"],
         "--mask was given 2 times but there is 1 style"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.jpg", "--mask", "{tmp}/nope.png"], "--mask {tmp}/nope.png: no such file"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.jpg", "--mask", "{a}", "--style-weights", "1"], "do not go together"),
        # -o: every check before any work
        (["transfer", "{a}", "{s1}", "-o", ""], "-o is empty"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/plain"],
         "-o {tmp}/plain: with no image file extension it names a folder, and '{tmp}/plain' is a file"),
        (["transfer", "{a}", "{s1}", "-o", "{s1}/"], "-o {s1}/: a trailing / names a folder, and '{s1}' is a file"),
        (["transfer", "{a}", "{b}", "{s1}", "-o", "{tmp}/many.ico"], "2 results need a folder, not an image file name"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.psd"], "-o {tmp}/x.psd: stylekit does not write PSD files (.psd)"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.ico"], "stylekit does not write ICO files"),
        (["transfer", "{a}", "{b}", "{s1}", "-o", "{tmp}/many.jpg"], "-o {tmp}/many.jpg: 2 results need a folder, not an image file name"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/x.png", "--format", "jpg"], "is a .png file but --format is jpg"),
        (["transfer", "{a}", "{s1}", "-o", "{a}/x.png"], "cannot create the folder '{a}': '{a}' is a file, not a folder"),
        (["transfer", "{a}", "-s", "{s1}", "-s", "{tmp}/paintings2/s1.jpg", "-o", "{tmp}/o"],
         "{a} with {s1} and {a} with {tmp}/paintings2/s1.jpg would both be written to {tmp}/o/a__s1.jpg"),
        # never over an input: the content, the style, a mask, a whole folder of photos
        (["transfer", "{a}", "{s1}", "-o", "{a}"], "the result {a} would overwrite the input {a}"),
        (["transfer", "{a}", "{s1}", "-o", "{s1}"], "the result {s1} would overwrite the input {s1}"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/photos/../photos/a.png"], "would overwrite the input {a}"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/link.png"], "the result {tmp}/link.png would overwrite the input {a}"),
        (["transfer", "{a}", "{s1}", "-o", "{tmp}/m.png", "--mask", "{tmp}/m.png"], "would overwrite the input {tmp}/m.png"),
        (["transfer", "{tmp}/photos", "{s1}", "-o", "{tmp}/photos", "--format", "png"], "the result {a} would overwrite the input {a}"),
    ],
)
def test_errors_are_one_line(tiny, imgs, tmp_path, capsys, args, message):
    fmt = {k: str(v) for k, v in imgs.items()} | {"tmp": str(tmp_path)}
    (tmp_path / "paintings2").mkdir()
    _img(tmp_path / "paintings2" / "s1.jpg")
    _img(tmp_path / "m.png", 40, 32, 5)
    (tmp_path / "link.png").symlink_to(imgs["a"])
    (tmp_path / "plain").write_bytes(b"not a folder")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main([a.format(**fmt) for a in args]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("stylekit: error: ") and message.format(**fmt) in line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written, nothing lost


def test_output_folder_with_a_trailing_slash_and_a_dot(tiny, imgs, tmp_path):
    out = f"{tmp_path}/out.d/"
    assert main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", out]) == 0
    assert [p.name for p in (tmp_path / "out.d").iterdir()] == ["a.jpg"]


def test_a_picture_too_long_for_size_is_skipped_in_a_batch(tiny, imgs, tmp_path, capsys):
    """--size on a 4000 x 16 strip would make 64+ MP: that picture is reported, the others are written."""
    _img(tmp_path / "photos" / "long.png", 4000, 16)
    code = main(["transfer", str(tmp_path / "photos"), str(imgs["s1"]), "-o", str(tmp_path / "o"), "--size", "1100", "--json"])
    assert code == 2
    res = json.loads(capsys.readouterr().out)
    assert sorted(Path(r["output"]).name for r in res["results"]) == ["a.jpg", "b.jpg"]
    (err,) = res["errors"]
    assert err["content"].endswith("long.png") and "content (4000x16 px): size=1100 would make" in err["error"]


def _mask(path: Path, left: bool) -> Path:
    m = np.zeros((16, 20), np.uint8)
    m[:, :10] = 255
    Image.fromarray(m if left else 255 - m).save(path)
    return path


@pytest.mark.parametrize("kind", ["weights", "masks"])
def test_combined_styles_give_one_result_per_content(tiny, imgs, tmp_path, capsys, kind):
    """--style-weights mixes the styles, --mask gives each its region: one result per content, the
    same pixels as stylekit.transfer() with style_weights= / masks=, and the option matters."""
    styles = ["-s", str(imgs["s1"]), "-s", str(imgs["s2"])]
    left, right = _mask(tmp_path / "left.png", True), _mask(tmp_path / "right.png", False)
    flags = {"weights": (["--style-weights", "3,1"], ["--style-weights", "1,3"]),
             "masks": (["--mask", str(left), "--mask", str(right)], ["--mask", str(right), "--mask", str(left)])}[kind]
    api_kw = {"weights": ({"style_weights": [3, 1]}, {"style_weights": [1, 3]}),
              "masks": ({"masks": [left, right]}, {"masks": [right, left]})}[kind]  # fmt: skip
    out = tmp_path / "o"
    code = main(["transfer", str(imgs["a"]), str(imgs["b"]), *styles, "-o", str(out), "--format", "png", "--json", *flags[0]])
    assert code == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert all(r["style"] == [str(imgs["s1"]), str(imgs["s2"])] for r in res["results"])
    got = np.asarray(Image.open(out / "a.png"))
    want = np.asarray(stylekit.transfer(str(imgs["a"]), [str(imgs["s1"]), str(imgs["s2"])], **api_kw[0]))
    other = np.asarray(stylekit.transfer(str(imgs["a"]), [str(imgs["s1"]), str(imgs["s2"])], **api_kw[1]))
    assert np.array_equal(got, want)
    assert np.abs(got.astype(int) - other).mean() > 1  # the weights / masks were passed, in order


def test_one_style_in_one_region(tiny, imgs, tmp_path, capsys):
    left = _mask(tmp_path / "left.png", True)
    out = tmp_path / "x.png"
    assert main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(out), "--mask", str(left)]) == 0
    want = stylekit.transfer(str(imgs["a"]), str(imgs["s1"]), masks=[left])
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(want))


@pytest.mark.parametrize("value", ["1,x", "0,0", "-1,2", "nan", "inf,1", ""])
def test_style_weights_must_be_numbers(imgs, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(tmp_path / "x.png"), f"--style-weights={value}"])
    assert e.value.code == 2
    assert "--style-weights must be comma-separated numbers" in _one_line(capsys.readouterr().err)


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["transfer", "a.jpg", "b.jpg", "-o", "x.jpg", "--alpha", "1.5"])
    assert e.value.code == 2
    assert "--alpha must be a number in [0, 1]" in _one_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    _one_line(capsys.readouterr().err)


def test_debug_shows_the_exception(tiny, imgs, tmp_path):
    with pytest.raises(stylekit.ImageError):
        main(["--debug", "transfer", "nope.jpg", str(imgs["s1"]), "-o", str(tmp_path / "x.jpg")])
    with pytest.raises(stylekit.ImageError):
        main(["transfer", "nope.jpg", str(imgs["s1"]), "-o", str(tmp_path / "x.jpg"), "--debug"])


# ----------------------------------------------------------------------------- --preserve-color / --method


OPTIONS = [("--preserve-color", "preserve_color", ["--preserve-color"], "luminance"),
           ("--method", "method", ["--method", "wct"], "wct"),
           ("--max-size", "max_size", ["--max-size", "40"], 40),
           ("--tile", "tile", ["--tile", "auto"], "auto"),
           ("--tile", "tile", ["--tile", "256"], 256)]  # fmt: skip


@pytest.mark.parametrize("flag, name, argv, value", OPTIONS)
def test_options_are_passed_only_when_given(monkeypatch, imgs, tmp_path, flag, name, argv, value):
    calls: list[dict] = []
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # as under CI, also with pytest -s on a terminal

    def fake(content, style, alpha=1.0, *, device="auto", dtype="auto", size=None, preserve_color=None, method="adain",
             max_size=None, tile=None, progress=True):  # fmt: skip
        calls.append({"preserve_color": preserve_color, "method": method, "max_size": max_size, "tile": tile})
        assert progress is False  # one image, and pytest's stderr is not a terminal
        return Image.new("RGB", (20, 16))

    monkeypatch.setattr(stylekit, "transfer", fake)
    out = str(tmp_path / "x.png")
    assert main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", out]) == 0
    assert calls[-1] == {"preserve_color": None, "method": "adain", "max_size": None, "tile": None}  # the function's own defaults
    assert main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", out, *argv]) == 0
    assert calls[-1][name] == value


@pytest.mark.parametrize("flag, name, argv, value", OPTIONS)
def test_options_missing_from_the_api_give_a_clear_error(monkeypatch, imgs, tmp_path, capsys, flag, name, argv, value):
    def old(content, style, alpha=1.0, *, device="auto", dtype="auto", size=None):
        raise AssertionError("must not be called")

    monkeypatch.setattr(stylekit, "transfer", old)
    assert main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(tmp_path / "x.png"), *argv]) == 2
    assert f"this version of stylekit.transfer() has no {name}= option" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("flag, name, argv, value", OPTIONS)
def test_options_with_the_real_api(tiny, imgs, tmp_path, capsys, flag, name, argv, value):
    """Whatever stylekit.transfer() offers today: the option works, or the CLI says it is missing."""
    code = main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(tmp_path / "x.png"), "--size", "32", *argv])
    if name in inspect.signature(stylekit.transfer).parameters:
        assert code == 0, capsys.readouterr().err
        assert Image.open(tmp_path / "x.png").size == (40, 32)
    else:
        assert code == 2 and "has no" in _one_line(capsys.readouterr().err)


def test_a_picture_too_large_to_stylise_whole_points_at_the_flags(tiny, imgs, tmp_path, capsys, monkeypatch):
    """The memory rule's refusal names the command's own flags, and --tile / --max-size get past it."""
    import stylekit.memory

    monkeypatch.setattr(stylekit.memory, "MAX_UNTILED_PIXELS", 1000)  # imgs["a"] at --size 32: 40 x 32 = 1280 px
    args = ["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(tmp_path / "x.png"), "--size", "32"]
    assert main(args) == 2
    err = _one_line(capsys.readouterr().err)
    assert "too large to stylise without tiles" in err and "--tile auto, --max-size N" in err, err
    assert main([*args, "--tile", "auto"]) == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "x.png").size == (40, 32)
    assert main([*args, "--max-size", "24"]) == 0, capsys.readouterr().err  # 24 x 19, padded 24 x 24
    assert Image.open(tmp_path / "x.png").size == (24, 19)


@pytest.mark.parametrize("value", ["big", "1.5", ""])
def test_tile_must_be_auto_or_pixels(imgs, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(tmp_path / "x.png"), "--tile", value])
    assert e.value.code == 2
    assert "--tile must be auto or a number of pixels" in _one_line(capsys.readouterr().err)


def test_preserve_color_swallowing_a_file_name(imgs, tmp_path, capsys):
    assert main(["transfer", "--preserve-color", str(imgs["a"]), str(imgs["s1"]), "-o", str(tmp_path / "x.png")]) == 2
    assert "write the images first" in _one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- demo, info, train


def test_demo(tiny, tmp_path, capsys):
    out = tmp_path / "demo.jpg"
    assert main(["demo", "-o", str(out), "--device", "cpu"]) == 0
    w, h = Image.open(CAT).size
    assert Image.open(out).size == (round(w * DEMO_SIZE / h), DEMO_SIZE)  # twice the photo's size
    assert main(["demo", "-o", str(out), "--device", "cpu", "--size", str(h)]) == 0
    assert Image.open(out).size == (w, h)


def test_info(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"stylekit {stylekit.__version__}" in text and "torch" in text and "device:" in text
    assert "vgg19_conv_q8.safetensors (sha256 ok)" in text
    assert main(["info", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    enc = next(w for w in d["weights"] if w["name"] == "vgg19_conv_q8.safetensors")
    assert enc["ok"] and enc["sha256"] == enc["sha256_recorded"] and len(enc["sha256"]) == 64
    assert d["versions"]["stylekit"] == stylekit.__version__ and d["device"] in ("cpu", "cuda", "mps")
    from stylekit.device import cpu_has_fast_bf16

    assert d["cpu_bf16_hardware"] is cpu_has_fast_bf16() and isinstance(d["cpu_fp16_hardware"], bool)
    assert ("CPU bf16 hardware (AMX / AVX-512-BF16): " + ("yes" if cpu_has_fast_bf16() else "no (")) in text
    if d["device"] == "cpu":  # what dtype="auto" gives follows the hardware
        assert d["dtype"] == ("bfloat16" if cpu_has_fast_bf16() else "float32")


def test_train_passes_its_options(monkeypatch, tmp_path, capsys):
    import stylekit.train as train_mod

    seen = {}

    def fake_train(**kw):
        seen.update(kw)
        return train_mod.TrainResult(7, 1.0, 0.5, 0.05, tmp_path / "decoder.safetensors", tmp_path / "c", 0, 2.5e-4)

    monkeypatch.setattr(train_mod, "train", fake_train)
    argv = ["train", "--content-dir", "c", "--style-dir", "s", "--out", str(tmp_path), "--steps", "7", "--crop", "64",
            "--batch-size", "2", "--device", "cpu", "--no-resume", "--lr-warmup", "5", "--grid-weight", "100"]  # fmt: skip
    assert main(argv) == 0
    assert seen["steps"] == 7 and seen["crop"] == 64 and seen["batch_size"] == 2 and seen["resume"] is False
    assert seen["lr_warmup"] == 5 and seen["grid_weight"] == 100.0
    out = capsys.readouterr().out
    assert "step 7" in out and "grid 0.00025" in out
    assert main([*argv, "--crop", "256,384"]) == 0  # the last --crop wins
    assert seen["crop"] == (256, 384)
    with pytest.raises(SystemExit):
        main([*argv, "--crop", "256,big"])
    assert "--crop must be a size in px or comma-separated sizes" in capsys.readouterr().err


def test_train_defaults_are_the_train_configs(monkeypatch, tmp_path):
    """The command's defaults (written out so that the parser does not import torch) are TrainConfig's."""
    import dataclasses

    import stylekit.train as train_mod

    seen = {}
    monkeypatch.setattr(train_mod, "train", lambda **kw: seen.update(kw) or train_mod.TrainResult(1, 1.0, 0.5, 0.05, tmp_path, tmp_path, 0))
    assert main(["train", "--content-dir", "c", "--style-dir", "s", "--out", str(tmp_path)]) == 0
    defaults = {f.name: f.default for f in dataclasses.fields(train_mod.TrainConfig)}
    passed = {k: v for k, v in seen.items() if k not in ("content_dir", "style_dir", "out")}
    assert passed and passed == {k: defaults[k] for k in passed}


def test_export_opset_help_names_the_exporters_defaults():
    """The parser does not import torch, so --opset's help spells the defaults out: keep them true."""
    from stylekit.cli import build_parser
    from stylekit.export import DEFAULT_OPSET, DYNAMO_MIN_OPSET

    export = build_parser()._subparsers._group_actions[0].choices["export"]  # type: ignore[union-attr]
    (opset,) = [a for a in export._actions if "--opset" in a.option_strings]
    assert f"default {DEFAULT_OPSET}, or {DYNAMO_MIN_OPSET} with --dynamo" in opset.help


def test_export_torchscript(tmp_path, capsys):
    torch.manual_seed(0)
    dec = tmp_path / "dec.safetensors"
    Decoder().save(dec)
    out = tmp_path / "m.pt"
    assert main(["export", "-o", str(out), "--decoder", str(dec)]) == 0  # the format follows the suffix
    assert "torchscript" in capsys.readouterr().out
    assert out.stat().st_size > 10_000_000


@pytest.mark.parametrize("argv, fmt, opset", [
    (["-o", "m.onnx"], "onnx", 17), (["-o", "m.onnx", "--dynamo"], "onnx", 18),
    (["-o", "m.onnx", "--dynamo", "--opset", "19"], "onnx", 19), (["-o", "m.torchscript"], "torchscript", None),
])  # fmt: skip
def test_export_opset_and_format_follow_the_options(argv, fmt, opset, tmp_path, monkeypatch, capsys):
    """--dynamo alone must work (its exporter needs opset 18); every TorchScript suffix picks TorchScript."""
    import stylekit.export

    calls = []

    def fake(kind):
        def write(path, **kw):
            calls.append((kind, kw.get("opset")))
            Path(path).write_bytes(b"x")
            return Path(path)
        return write

    monkeypatch.setattr(stylekit.export, "export_onnx", fake("onnx"))
    monkeypatch.setattr(stylekit.export, "export_torchscript", fake("torchscript"))
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 0
    assert calls == [(fmt, opset)]


# ----------------------------------------------------------------------------- real processes


def _run(args: list[str], stdin: bytes | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "stylekit", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=300)


def test_subprocess_version_and_errors(tmp_path):
    r = _run(["--version"])
    assert r.returncode == 0 and r.stdout.decode().strip() == f"stylekit {stylekit.__version__}"
    r = _run(["transfer", str(tmp_path / "missing.jpg"), str(WAVE), "-o", str(tmp_path / "x.jpg")])
    assert r.returncode == 2
    assert "missing.jpg" in _one_line(r.stderr.decode())
    r = _run(["transfer", "a.jpg", "b.jpg", "-o", "x.jpg", "--alpha", "-1"])
    assert r.returncode == 2 and "--alpha" in _one_line(r.stderr.decode())


TINY_MAIN = textwrap.dedent("""
    import sys, torch
    from stylekit import AdaINModel, Decoder, VGGEncoder, api
    from stylekit.cli import main
    torch.manual_seed(0)
    model = AdaINModel(VGGEncoder.from_pretrained(), Decoder())
    api._build_model = lambda device: api._prepare(model, device)
    sys.exit(main(sys.argv[1:]))
""")


def test_subprocess_pipe_stdin_to_stdout():
    r = _run(["transfer", "-", str(WAVE), "-o", "-", "--size", "32", "--format", "jpg"], stdin=CAT.read_bytes(), code=TINY_MAIN)
    assert r.returncode == 0, r.stderr.decode()
    img = Image.open(io.BytesIO(r.stdout))
    assert img.format == "JPEG" and img.size == (48, 32)


@needs_decoder
def test_subprocess_demo_with_the_shipped_decoder(tmp_path):
    r = _run(["demo", "-o", str(tmp_path / "demo.jpg")])
    assert r.returncode == 0, r.stderr.decode()
    assert Image.open(tmp_path / "demo.jpg").size == (902, 600)


# ----------------------------------------------------------------------------- --decoder


def test_transfer_with_a_decoder_file(imgs, tmp_path, capsys):
    torch.manual_seed(3)
    dec = Decoder()
    path = tmp_path / "mine.safetensors"
    dec.save(path, metadata={"step": "1"}, dtype=torch.float32)
    out = tmp_path / "x.png"
    argv = ["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(out), "--decoder", str(path), "--device", "cpu", "--dtype", "fp32"]
    assert main(argv) == 0, capsys.readouterr().err
    expected = stylekit.StyleTransfer("cpu", "fp32", model=AdaINModel(VGGEncoder.from_pretrained(), Decoder.from_file(path)))(
        Image.open(imgs["a"]), Image.open(imgs["s1"]))  # fmt: skip
    got = np.asarray(Image.open(out), dtype=np.int16)
    assert got.shape == (32, 40, 3)
    assert np.abs(got - np.asarray(expected, dtype=np.int16)).max() <= 1  # the same decoder ran
    # and the demo takes it too
    assert main(["demo", "-o", str(tmp_path / "d.jpg"), "--decoder", str(path), "--device", "cpu"]) == 0


def test_transfer_with_a_bad_decoder_file_is_one_line(imgs, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    code = main(["transfer", str(imgs["a"]), str(imgs["s1"]), "-o", str(tmp_path / "x.png"), "--decoder", str(bad)])
    assert code == 2
    assert "bad.safetensors" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- malloc


@pytest.mark.parametrize("setting, called", [("tuned", True), (None, True), ("default", False)])
def test_the_command_tunes_malloc_unless_told_not_to(monkeypatch, setting, called, capsys):
    import stylekit.device

    calls = []
    monkeypatch.setattr(stylekit.device, "tune_malloc", lambda: calls.append(1) or True)
    if setting is None:
        monkeypatch.delenv("STYLEKIT_MALLOC", raising=False)
    else:
        monkeypatch.setenv("STYLEKIT_MALLOC", setting)
    assert main(["info"]) == 0
    assert bool(calls) == called


def test_training_docs_options_table_matches_the_parser():
    """docs/training.md's options table is a third copy of the train defaults: keep it true and whole."""
    import re

    from stylekit.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    actions = {s: a for a in sub.choices["train"]._actions for s in a.option_strings
               if s not in ("-h", "--help", "--debug")}  # fmt: skip (--debug: every command's, docs/cli.md)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    table = doc[doc.index("| option | default | what it sets |") :].split("\n\n")[0].splitlines()[2:]
    seen = []
    for row in table:
        flags_cell, default_cell = row.split("|")[1:3]
        flags = re.findall(r"`(--[a-z-]+)`", flags_cell)
        defaults = [d.strip() for d in default_cell.split(",")]
        defaults = defaults * len(flags) if len(defaults) == 1 else defaults
        assert len(defaults) == len(flags), row
        for flag, text in zip(flags, defaults):
            action = actions[flag]
            want = {"random": None, "none": None, "off": False}.get(text, text)
            if text == "(required)":
                assert action.required, flag
            elif isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
                assert float(text) == action.default, (flag, text, action.default)
            else:
                assert want == action.default, (flag, text, action.default)
            seen.append(flag)
    assert sorted(seen) == sorted(actions), "every train option is in the table, once"
