"""stylekit.image: every input kind in and back out, and every way an image can be bad."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageFile

import stylekit.image as image_mod
from stylekit import ArgumentError, ImageError, ShapeError, load_image, save_image
from stylekit.image import crop_padding, pad_to_multiple, read_image, resize_short_side, to_pil

FAST = settings(max_examples=25, deadline=None)
U8_IMAGES = hnp.arrays(np.uint8, st.tuples(st.integers(16, 40), st.integers(16, 40), st.just(3)), elements=st.integers(0, 255))


def gradient_rgb(w: int = 48, h: int = 40) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    arr = np.stack([x, y, 255 - x], axis=2).round().astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def write(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize("as_str", [True, False])
def test_load_path(tmp_path: Path, as_str: bool) -> None:
    p = write(gradient_rgb(), tmp_path / "g.png")
    x = load_image(str(p) if as_str else p)
    assert x.shape == (1, 3, 40, 48) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.allclose(x, torch.from_numpy(np.array(gradient_rgb())).permute(2, 0, 1)[None] / 255.0)
    assert read_image(p).kind == "path"


def test_missing_file_names_argument_and_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"content.*no such file.*nope\.jpg"):
        load_image(tmp_path / "nope.jpg", name="content")


@pytest.mark.parametrize("url", ["https://example.com/a.jpg", "s3://bucket/a.png", "file:///tmp/none.jpg"])
def test_a_url_is_named_as_one_not_fetched(url: str) -> None:
    with pytest.raises(ImageError, match=r"style: '.*' is a URL; stylekit reads local files only"):
        load_image(url, name="style")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("data", [b"", b"hello, I am text\n" * 10], ids=["zero-byte", "text"])
def test_not_an_image(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    with pytest.raises(ImageError, match="not an image"):
        load_image(p, name="style")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    p = write(img, tmp_path / f"t.{fmt.lower()}", format=fmt)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageError, match="truncated"):
        load_image(p)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is before  # not changed globally


def test_too_small(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"too small \(min 16 px"):
        load_image(write(Image.new("RGB", (15, 15)), tmp_path / "s.png"))
    with pytest.raises(ImageError, match="too small"):
        load_image(write(Image.new("RGB", (100, 15)), tmp_path / "s2.png"))
    assert load_image(write(Image.new("RGB", (16, 16)), tmp_path / "ok.png")).shape == (1, 3, 16, 16)


def test_decompression_bomb_error(tmp_path: Path) -> None:
    p = write(Image.new("1", (30000, 30000)), tmp_path / "bomb.png")  # ~100 kB on disk
    assert p.stat().st_size < 1_000_000
    with pytest.raises(ImageError, match="too large"):
        load_image(p)


def test_decompression_bomb_warning_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(gradient_rgb(40, 40), tmp_path / "w.png")  # 1600 px: warns above 1000, errors above 2000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    filters = list(warnings.filters)
    # Pillow's open() warns (stylekit sets no warnings filter: that is not thread-safe), then
    # stylekit refuses the picture itself
    with pytest.raises(ImageError, match="too large"), pytest.warns(Image.DecompressionBombWarning):
        load_image(p)
    assert warnings.filters == filters


@pytest.mark.parametrize("kind", ["path", "numpy", "tensor"])
def test_max_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 40 * 40 - 1)
    img = gradient_rgb(40, 40)
    arg = {
        "path": write(img, tmp_path / "big.png"),
        "numpy": np.asarray(img),
        "tensor": torch.rand(3, 40, 40),
    }[kind]
    with pytest.raises(ImageError, match="too large"):
        load_image(arg)


def test_exif_orientation(tmp_path: Path) -> None:
    arr = np.zeros((24, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red, right half blue
    arr[:, 20:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # display = rotate 90 degrees clockwise
    p = write(img, tmp_path / "rot.jpg", exif=exif, quality=95)
    x = load_image(p)
    assert x.shape == (1, 3, 40, 24)  # transposed
    top, bottom = x[0, :, :16].mean((1, 2)), x[0, :, 24:].mean((1, 2))
    assert top[0] > 0.9 and top[2] < 0.1  # the left (red) half is now on top
    assert bottom[2] > 0.9 and bottom[0] < 0.1


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    p = tmp_path / "a.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(p).n_frames == 3
    px = load_image(p)[0, :, 5, 5]
    assert torch.allclose(px, torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_sixteen_bit_png_not_saturated(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16)[None, :].repeat(32, 0)
    p = write(Image.fromarray(ramp), tmp_path / "g16.png")
    assert Image.open(p).mode.startswith("I")
    x = load_image(p)
    assert x.shape == (1, 3, 32, 64)
    row = x[0, 0, 0]
    assert float(row[0]) == 0.0 and float(row[-1]) == pytest.approx(1.0)
    assert float(row[32]) == pytest.approx(32 / 63, abs=1e-3)
    assert (row.diff() > 0).all()  # strictly increasing: nothing clipped
    assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])
    as_i = load_image(Image.fromarray(ramp.astype(np.int32)))  # mode "I", as older Pillow opens 16-bit PNGs
    assert torch.allclose(as_i, x)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    p = write(Image.new("CMYK", (32, 32), (255, 0, 0, 0)), tmp_path / "c.jpg", quality=95)
    assert Image.open(p).mode == "CMYK"
    px = load_image(p)[0, :, 16, 16]
    assert torch.allclose(px, torch.tensor([0.0, 1.0, 1.0]), atol=0.03)  # pure cyan


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (32, 32), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    img.paste(0, (0, 0, 16, 32))  # left half: index 0, made transparent below
    p = write(img, tmp_path / "p.png", transparency=0)
    assert Image.open(p).mode == "P" and "transparency" in Image.open(p).info
    x = load_image(p)[0]
    assert torch.allclose(x[:, 5, 5], torch.ones(3))  # transparent: white, not black
    assert torch.allclose(x[:, 5, 25], torch.tensor([1.0, 0.0, 0.0]))


def test_la_and_rgba_composite_on_white(tmp_path: Path) -> None:
    la = Image.new("LA", (32, 32), (0, 0))
    la.paste((100, 255), (16, 0, 32, 32))
    x = load_image(write(la, tmp_path / "la.png"))[0]
    assert torch.allclose(x[:, 0, 0], torch.ones(3))
    assert torch.allclose(x[:, 0, 20], torch.full((3,), 100 / 255))
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 128))
    y = load_image(write(rgba, tmp_path / "rgba.png"))[0, :, 0, 0]
    a = 128 / 255
    assert torch.allclose(y, torch.tensor([1.0, 1 - a, 1 - a]), atol=1e-5)


@pytest.mark.parametrize("mode", ["1", "L", "P", "I", "I;16", "F", "RGBA", "LA", "CMYK", "YCbCr", "RGBX", "HSV"])
def test_pil_modes(mode: str) -> None:
    img = gradient_rgb(32, 24)
    if mode == "I;16":  # Pillow's L -> I;16 keeps 0-255 values; make a real 16-bit range
        img = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
    else:
        img = img.convert("L").convert(mode) if mode in ("I", "F") else img.convert(mode)
    assert img.mode == mode
    inp = read_image(img, name="content")
    assert inp.kind == "pil"
    assert inp.tensor.shape == (1, 3, 24, 32) and inp.tensor.dtype == torch.float32
    assert 0 <= float(inp.tensor.min()) <= float(inp.tensor.max()) <= 1
    assert float(inp.tensor.std()) > 0.05  # not flattened to one value
    assert isinstance(inp.to_output(inp.tensor), Image.Image)


def test_float_pil_modes() -> None:
    a = np.linspace(0, 1, 32 * 16, dtype=np.float32).reshape(16, 32)
    x = load_image(Image.fromarray(a, "F"))
    assert torch.allclose(x[0, 0], torch.from_numpy(a))  # already in [0, 1]: kept
    y = load_image(Image.fromarray(a * 1000 - 200, "F"))
    assert float(y.min()) == 0 and float(y.max()) == pytest.approx(1)  # min-max normalised


def test_pil_input_is_not_modified() -> None:
    img = gradient_rgb().convert("RGBA")
    load_image(img)
    assert img.mode == "RGBA" and img.size == (48, 40)


# ----------------------------------------------------------------------------- numpy


def test_numpy_uint8_round_trip() -> None:
    arr = np.asarray(gradient_rgb())
    inp = read_image(arr)
    out = inp.to_output(inp.tensor)
    assert out.dtype == np.uint8 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@given(U8_IMAGES)
@FAST
def test_numpy_uint8_round_trip_property(arr: np.ndarray) -> None:
    inp = read_image(arr)
    np.testing.assert_array_equal(inp.to_output(inp.tensor), arr)


def test_numpy_uint16_every_value_round_trips() -> None:
    arr = np.arange(65536, dtype=np.uint16).reshape(256, 256)[..., None].repeat(3, 2)
    inp = read_image(arr)
    assert inp.tensor.dtype == torch.float32 and float(inp.tensor.min()) == 0.0 and float(inp.tensor.max()) == 1.0
    out = inp.to_output(inp.tensor)
    assert out.dtype == np.uint16 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@given(U8_IMAGES)
@FAST
def test_numpy_uint16_is_uint8_times_257(arr: np.ndarray) -> None:
    """A 16-bit array holding an 8-bit picture (v * 257) reads as exactly the same tensor."""
    torch.testing.assert_close(load_image(arr.astype(np.uint16) * 257), load_image(arr), rtol=0, atol=0)


def test_numpy_uint16_either_byte_order() -> None:
    arr = (np.arange(40 * 48 * 3).reshape(40, 48, 3) * 13 % 65536).astype(np.uint16)
    big = arr.astype(">u2")
    torch.testing.assert_close(load_image(big), load_image(arr), rtol=0, atol=0)
    inp = read_image(big)
    out = inp.to_output(inp.tensor)
    assert out.dtype == np.dtype(">u2")
    np.testing.assert_array_equal(out, big)


def test_numpy_uint16_matches_a_16_bit_png(tmp_path: Path) -> None:
    g = (np.arange(32 * 48).reshape(32, 48) * 41 % 65536).astype(np.uint16)
    png = write(Image.fromarray(g), tmp_path / "g16.png")
    torch.testing.assert_close(load_image(g), load_image(png), rtol=0, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_float(dtype: type) -> None:
    arr = (np.asarray(gradient_rgb()) / 255.0).astype(dtype)
    inp = read_image(arr)
    out = inp.to_output(inp.tensor)
    assert out.dtype == dtype and out.shape == arr.shape
    np.testing.assert_allclose(out, arr, atol=1e-3)


def test_numpy_grayscale_and_single_channel() -> None:
    g = np.asarray(gradient_rgb().convert("L"))
    for arr in (g, g[..., None]):
        inp = read_image(arr)
        assert inp.tensor.shape == (1, 3, 40, 48)
        assert inp.to_output(inp.tensor).shape == (40, 48, 3)


def test_numpy_non_contiguous_and_read_only() -> None:
    arr = np.asarray(gradient_rgb(96, 80))
    for view in (arr[::2, ::2], arr[:, ::-1], arr.transpose(1, 0, 2), np.asfortranarray(arr)):
        assert not view.flags.c_contiguous or view is arr
        x = load_image(view)
        expected = torch.from_numpy(np.ascontiguousarray(view)).permute(2, 0, 1)[None] / 255.0
        assert torch.equal(x, expected.float())
    ro = arr.copy()
    ro.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch
        load_image(ro)


@pytest.mark.parametrize(
    "shape, match",
    [((32, 32, 4), "4 channels"), ((3, 32, 32), "channels-first"), ((32, 32, 2), "H x W x 3"),
     ((2, 32, 32, 3), "H x W x 3"), ((32,), "H x W x 3")],
)  # fmt: skip
def test_numpy_bad_shapes(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        load_image(np.zeros(shape, np.uint8), name="content")


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.uint32, np.int16, np.int8, np.complex64])
def test_numpy_bad_dtype(dtype: type) -> None:
    with pytest.raises(ShapeError, match=np.dtype(dtype).name):
        load_image(np.zeros((32, 32, 3), dtype), name="content")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_numpy_non_finite(bad: float) -> None:
    arr = np.full((32, 32, 3), 0.5, np.float32)
    arr[3, 4, 1] = bad
    with pytest.raises(ShapeError, match="NaN or Inf"):
        load_image(arr)


def test_numpy_float_range() -> None:
    arr = np.full((32, 32, 3), 0.5, np.float32)
    arr[0, 0, 0], arr[0, 1, 0] = 1.0005, -0.0005  # within tolerance: clamped
    x = load_image(arr)
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0
    arr[0, 0, 0] = 1.01
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        load_image(arr)
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        load_image(np.full((32, 32, 3), 255.0, np.float32))  # 0-255 floats


# ----------------------------------------------------------------------------- tensors


@pytest.mark.parametrize("shape", [(3, 20, 30), (1, 3, 20, 30), (4, 3, 20, 30)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_tensor_round_trip(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    t = torch.rand(shape).to(dtype)
    inp = read_image(t)
    assert inp.tensor.dtype == torch.float32 and inp.tensor.shape == (shape[0] if len(shape) == 4 else 1, 3, 20, 30)
    out = inp.to_output(inp.tensor)
    assert out.shape == t.shape and out.dtype == dtype and out.device == t.device
    assert torch.equal(out, t)


def test_tensor_requires_grad_is_detached() -> None:
    t = torch.rand(3, 16, 16, requires_grad=True)
    x = load_image(t)
    assert not x.requires_grad


@pytest.mark.parametrize(
    "t, match",
    [(torch.rand(16, 16), "(3, H, W)"), (torch.rand(1, 1, 3, 16, 16), "(3, H, W)"),
     (torch.rand(4, 16, 16), "3 \\(RGB\\) channels"), (torch.rand(16, 16, 3), "channels-last"),
     (torch.zeros(3, 16, 16, dtype=torch.uint8), "uint8"), (torch.zeros(3, 16, 16, dtype=torch.int64), "int64"),
     (torch.full((3, 16, 16), float("nan")), "NaN"), (torch.full((3, 16, 16), 2.0), r"\[0, 1\]"),
     (torch.full((3, 16, 16), -0.5), r"\[0, 1\]"), (torch.zeros(0, 3, 16, 16), "empty")],
)  # fmt: skip
def test_tensor_errors(t: torch.Tensor, match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        load_image(t, name="content")


def test_tensor_too_small() -> None:
    with pytest.raises(ImageError, match="too small"):
        load_image(torch.rand(3, 15, 64))


@pytest.mark.parametrize("arg", [[1, 2, 3], 42, None, {"a": 1}])
def test_unknown_type(arg: object) -> None:
    with pytest.raises(ImageError, match=rf"content must be a file path, encoded bytes, .* got .*{type(arg).__name__}"):
        load_image(arg, name="content")  # type: ignore[arg-type]


ENCODED = {
    "bytes": lambda data: data,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "BytesIO": io.BytesIO,
}


@pytest.mark.parametrize("kind", sorted(ENCODED))
def test_encoded_bytes_read_like_the_file(tmp_path: Path, kind: str) -> None:
    """An image file's bytes, or a file object, give the very tensor its path gives."""
    p = write(gradient_rgb(), tmp_path / "g.png")
    inp = read_image(ENCODED[kind](p.read_bytes()))
    assert inp.kind == "encoded"
    assert torch.equal(inp.tensor, load_image(p))
    assert isinstance(inp.to_output(inp.tensor), Image.Image)


def test_file_object_is_read_from_where_it_stands_and_left_open(tmp_path: Path) -> None:
    jpg = tmp_path / "r.jpg"
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(jpg)
    with open(jpg, "rb") as f:
        x = load_image(f)
        assert not f.closed and f.read() == b""
    assert torch.equal(x, load_image(jpg))
    buf = io.BytesIO(b"header" + jpg.read_bytes())
    buf.seek(6)  # a stream whose image starts past a header of the caller's
    assert torch.equal(load_image(buf), x)


def test_encoded_exif_orientation_and_16_bit(tmp_path: Path) -> None:
    """The same conversions as for paths: EXIF rotation, 16-bit gray kept unsaturated."""
    img = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).shape[-2:] == (30, 20)
    g16 = Image.fromarray((np.arange(20 * 30).reshape(20, 30) * 50).astype(np.uint16))
    buf = io.BytesIO()
    g16.save(buf, format="PNG")
    assert torch.equal(load_image(buf.getvalue()), load_image(g16))


def _bytes_of(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


class _TextReader:
    def read(self, n: int = -1) -> str:
        return "not bytes"


class _BrokenReader:
    name = "upload"

    def read(self, n: int = -1) -> bytes:
        raise OSError(5, "Input/output error")


class _AsyncUpload:  # as async web frameworks give uploads
    filename = "cat.jpg"

    async def read(self, n: int = -1) -> bytes:
        return b""


class _AwaitableReader:  # read() is not declared async but returns a coroutine
    def read(self, n: int = -1):
        return _AsyncUpload().read(n)


def _closed() -> io.BufferedReader:
    f = open(__file__, "rb")
    f.close()
    return f


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: b"", r"content: the data given is empty, not an image"),
        (lambda: b"hello, I am text\n" * 10, r"content: the data given \(170 bytes\) is not an image"),
        (lambda: _bytes_of(Image.new("RGB", (64, 64)), "JPEG")[:300], r"content: the data given \(300 bytes\) is truncated"),
        (lambda: _bytes_of(Image.new("RGB", (64, 8))), r"content is too small"),
        (lambda: open(__file__), r"content: the file object '.*test_image\.py' is open in text mode; open the image with 'rb'"),
        (lambda: io.StringIO("x"), r"the file object 'StringIO' is open in text mode"),
        (_TextReader, r"the file object '_TextReader' gave str, not bytes; open the image with 'rb'"),
        (lambda: io.BytesIO(b""), r"content: the file object 'BytesIO' is empty, not an image"),
        (lambda: io.BytesIO(_bytes_of(Image.new("RGB", (64, 64)), "JPEG")[:300]), r"content: the file object 'BytesIO' \(300 bytes\) is truncated"),
        (_closed, r"content: cannot read the file object '.*test_image\.py': read of closed file"),
        (_BrokenReader, r"content: cannot read the file object 'upload': Input/output error"),
        (_AsyncUpload, r"content: the file object '_AsyncUpload' has an async read\(\); pass its bytes instead \(data = await upload\.read\(\)\)"),
        (_AwaitableReader, r"content: read\(\) of the file object '_AwaitableReader' gave an awaitable; pass its bytes instead"),
    ],
    ids=["empty", "text", "truncated", "too-small", "text-mode-file", "StringIO", "str-reader", "empty-file", "truncated-file", "closed",
         "io-error", "async-read", "awaitable-read"],
)
def test_encoded_errors(make, match: str) -> None:
    arg = make()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. no "coroutine ... was never awaited"
            with pytest.raises(ImageError, match=match):
                load_image(arg, name="content")
    finally:
        if hasattr(arg, "close"):
            arg.close()


def test_encoded_size_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_PIXELS holds for bytes as for files, and a stream is not read past 16 bytes per pixel of it."""
    data = _bytes_of(Image.new("RGB", (64, 64)))
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match=r"too large: 64x64"):
        load_image(data, name="content")
    noise = _bytes_of(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    assert len(noise) > 161
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 10)
    stream = io.BytesIO(noise)
    with pytest.raises(ImageError, match=r"the file object 'BytesIO' holds over 160 bytes"):
        load_image(stream, name="content")
    assert stream.tell() == 161


# ----------------------------------------------------------------------------- out


def test_to_pil() -> None:
    img = to_pil(torch.ones(1, 3, 16, 24))
    assert img.mode == "RGB" and img.size == (24, 16) and img.getpixel((0, 0)) == (255, 255, 255)
    assert to_pil(torch.full((3, 16, 16), 2.0)).getpixel((0, 0)) == (255, 255, 255)  # clamped
    with pytest.raises(ShapeError):
        to_pil(torch.rand(2, 3, 16, 16))


def test_save_image(tmp_path: Path) -> None:
    img = gradient_rgb()
    p = save_image(img, tmp_path / "a" / "b" / "out.png")
    assert p.is_file()
    np.testing.assert_array_equal(np.asarray(Image.open(p)), np.asarray(img))
    q = save_image(load_image(img), tmp_path / "x.jpg")
    with Image.open(q) as back:
        assert back.format == "JPEG" and back.size == (48, 40)
        assert np.abs(np.asarray(back, np.int16) - np.asarray(img, np.int16)).mean() < 3  # quality 95
    save_image(img.convert("RGBA"), tmp_path / "rgba.jpg")  # converted, no "cannot write mode RGBA" error
    save_image(np.asarray(img), tmp_path / "arr.webp")
    with pytest.raises(ArgumentError, match="extension"):
        save_image(img, tmp_path / "out.nope")
    with pytest.raises(ArgumentError, match="extension"):  # the path is checked before the picture is converted
        save_image(np.zeros((20, 20, 7), np.uint8), tmp_path / "out.nope")
    with pytest.raises(ShapeError):
        save_image(np.zeros((20, 20, 7), np.uint8), tmp_path / "out.png")
    assert not (tmp_path / "out.nope").exists() and not (tmp_path / "out.png").exists()


def _written_extensions() -> list[str]:
    Image.init()
    return sorted(e for e, f in Image.registered_extensions().items() if e in image_mod.WRITE_EXTENSIONS and f in Image.SAVE)


@pytest.mark.parametrize("ext", _written_extensions())
def test_save_image_every_written_format_keeps_the_size(tmp_path: Path, ext: str) -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (29, 37, 3), dtype=np.uint8))
    p = save_image(img, tmp_path / f"x{ext}")
    if Image.registered_extensions()[ext] == "PDF":  # Pillow writes PDF but does not read it
        assert p.read_bytes().startswith(b"%PDF")
        return
    with Image.open(p) as back:
        assert back.size == (37, 29)


@pytest.mark.parametrize(
    ("path", "match"),
    [("x.psd", r"does not write PSD files \(\.psd\)"), ("x.ico", "does not write ICO"), ("x.icns", "does not write ICNS"),
     ("x.xbm", "does not write XBM"), ("x.pgm", r"does not write PPM files \(\.pgm\)"), ("x.bw", "does not write SGI"),
     ("x", "no image file extension"), ("x.nope", "unknown image file extension '.nope'")],
)
def test_save_image_refuses_what_it_cannot_write_before_converting(tmp_path: Path, path: str, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        save_image(np.zeros((20, 20, 7), np.uint8), tmp_path / path)  # a bad picture too: the path is checked first
    assert list(tmp_path.iterdir()) == []


def test_save_image_checks_its_arguments(tmp_path: Path) -> None:
    x = torch.rand(3, 8, 8)
    for path in (b"x.png", "", 3):
        with pytest.raises(ArgumentError, match="path must be a non-empty str or os.PathLike"):
            save_image(x, path)  # type: ignore[arg-type]
    for q in ("hi", 0, 101, -5, 95.0, True):
        with pytest.raises(ArgumentError, match="quality must be an int from 1 to 100"):
            save_image(x, tmp_path / "q.jpg", quality=q)  # type: ignore[arg-type]
    for bad, match in [(x * 255, r"must be in \[0, 1\].*divide by 255"), (x.masked_fill(x > 0.5, float("nan")), "NaN"),
                       (torch.rand(2, 3, 8, 8), r"\(1, 3, H, W\)"), (torch.ones(3, 8, 8, dtype=torch.uint8), "floating"),
                       (torch.rand(1, 8, 8), r"image must be a floating \(3, H, W\)")]:
        with pytest.raises(ShapeError, match=match):
            save_image(bad, tmp_path / "t.png")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ImageError, match="cannot create the folder"):
        save_image(x, tmp_path / "file" / "t.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_save_image_clamps_a_little_overshoot(tmp_path: Path) -> None:
    """A decoder's raw output strays a little outside [0, 1]: clamped, as before, not refused."""
    x = torch.full((3, 8, 8), 1.3)
    x[0] = -0.2
    back = np.asarray(Image.open(save_image(x, tmp_path / "o.png")))
    assert back[..., 0].max() == 0 and back[..., 1:].min() == 255


def test_save_image_keeps_what_the_format_holds(tmp_path: Path) -> None:
    """RGBA and 16-bit pictures stay so in a PNG; only a format that cannot hold them converts."""
    rgba = Image.new("RGBA", (20, 16), (10, 200, 30, 77))
    with Image.open(save_image(rgba, tmp_path / "a.png")) as back:
        assert back.mode == "RGBA" and back.getpixel((0, 0)) == (10, 200, 30, 77)
    g16 = Image.fromarray(np.full((16, 20), 30000, np.uint16))
    with Image.open(save_image(g16, tmp_path / "g.png")) as back:
        assert back.mode.startswith("I") and np.asarray(back).max() == 30000


def test_save_image_converts_a_mode_without_turning_the_picture(tmp_path: Path) -> None:
    img = Image.new("RGBA", (40, 20), (255, 0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90": load_image turns it, but save_image writes the pixels given
    img.info["exif"] = exif.tobytes()
    with Image.open(save_image(img, tmp_path / "r.jpg")) as back:
        assert back.size == (40, 20)


@pytest.mark.parametrize(
    "make",
    [lambda: Image.new("RGBA", (20, 16), (0, 0, 0, 0)), lambda: Image.fromarray(np.full((16, 20), 30000, np.uint16)),
     lambda: Image.fromarray(np.full((16, 20), 0.5, np.float32)), lambda: Image.new("RGB", (20, 16), (200, 100, 50)).convert("P"),
     lambda: gradient_rgb(20, 16).convert("CMYK"), lambda: Image.new("LA", (20, 16), (10, 128))],
    ids=["rgba-transparent", "uint16", "float", "palette", "cmyk", "la"],
)
def test_save_image_writes_other_modes_as_load_image_reads_them(tmp_path: Path, make) -> None:
    """A transparent RGBA picture used to come out black in a JPEG, a 16-bit one white, a float one black."""
    img = make()
    want = load_image(img)
    png = load_image(save_image(img, tmp_path / "x.png"))
    torch.testing.assert_close(png, want, atol=0.5 / 255 + 1e-6, rtol=0)  # rounded to 8 bits
    jpg = load_image(save_image(img, tmp_path / "x.jpg"))
    assert float((jpg - want).abs().mean()) < 4 / 255  # quality 95 (4:2:0 chroma on saturated colours)


# ----------------------------------------------------------------------------- resizing and padding


def test_resize_short_side() -> None:
    x = torch.rand(2, 3, 40, 100)
    assert resize_short_side(x, 20).shape == (2, 3, 20, 50)
    assert resize_short_side(x.transpose(2, 3), 20).shape == (2, 3, 50, 20)
    assert resize_short_side(x, 40) is x
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2
    small = resize_short_side(checker.float().expand(1, 3, 64, 64), 16)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)  # antialiased: no aliasing


@pytest.mark.parametrize("size", [15, 0, -3, True, 16.0, "32"])
def test_resize_bad_size(size: object) -> None:
    with pytest.raises(ArgumentError, match="size"):
        resize_short_side(torch.rand(1, 3, 32, 32), size)  # type: ignore[arg-type]


def test_resize_over_max_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 10_000)
    with pytest.raises(ArgumentError, match="MP"):
        resize_short_side(torch.rand(1, 3, 16, 16), 200)


@given(st.integers(1, 70), st.integers(1, 70))
@FAST
def test_pad_crop_property(h: int, w: int) -> None:
    x = torch.rand(1, 3, h, w)
    y, pads = pad_to_multiple(x, 8)
    assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
    assert y.shape[-2] - h < 8 and y.shape[-1] - w < 8
    assert torch.equal(crop_padding(y, pads), x)


def test_pad_uses_reflection() -> None:
    x = torch.arange(17.0).view(1, 1, 1, 17).expand(1, 1, 16, 17)
    y, (left, right, top, bottom) = pad_to_multiple(x, 8)
    assert (left, right) == (3, 4)
    assert y[0, 0, 0, :left].tolist() == [3.0, 2.0, 1.0]  # reflect, not replicate or zeros

