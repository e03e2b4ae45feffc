"""Every example in README.md and docs/*.md runs against the real package.

- Each ```python block is executed, with the shipped weights, in a folder that holds the files
  the examples name (``photo.jpg`` is the bundled cat, ``painting.jpg`` the bundled Renoir, ...,
  ``clip.mp4`` a tiny generated video, ``stylekit.onnx`` exported by ``stylekit.export_onnx``).
  Names that the surrounding prose defines (``cat``, ``wave``, ``frames``, ...) are given by
  ``prelude()``. Only one thing is changed in a block, in ``SMALLER`` below: the training example's
  20,000 steps become 2 tiny ones. Every file a block writes must be a readable, non-empty one, and
  a PIL result named ``out`` must have its content's size.
- Every ``stylekit ...`` command line in the other fenced blocks is parsed by the real command's
  argument parser, so an option renamed in ``stylekit/cli.py`` but not in the docs fails here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylekit
from stylekit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
EX = Path(stylekit.__file__).parent / "examples"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CAT, WAVE, GAUGUIN = "chelsea_cat.jpg", "renoir_the_wave_1879_aic81557.jpg", "gauguin_why_are_you_angry_1896_aic19339.jpg"
FILES = {"photo.jpg": CAT, "a.jpg": CAT, "cat.jpg": CAT, "b.jpg": "astronaut_nasa.jpg",
         "painting.jpg": WAVE, "wave.jpg": WAVE, "gauguin.jpg": GAUGUIN}
# (page, text in a block) -> what replaces it: a run shortened so that it fits a test.
SMALLER = {
    ("training.md", "steps=20000"): "steps=2, batch_size=2, crop=64, workers=0, val_fraction=0.0, progress=False",
}
SLOW = ("method=\"gatys\"", "stylize_video", "FrameStylizer", "ort.InferenceSession", "from stylekit.train import train")


def fenced_blocks(page: Path) -> list[tuple[int, str, str]]:
    """(first line number, info string, text) of every fenced block of a Markdown page."""
    blocks, lines, start, info, body = [], page.read_text().splitlines(), None, "", []
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            if start is None:
                start, info, body = n, line[3:].strip(), []
            else:
                blocks.append((start, info, "\n".join(body) + "\n"))
                start = None
        elif start is not None:
            body.append(line)
    assert start is None, f"{page.name}: the block opened at line {start} is never closed"
    return blocks


def python_blocks():
    for page in PAGES:
        for n, info, text in fenced_blocks(page):
            if info == "python":
                marks = [pytest.mark.slow] if any(s in text for s in SLOW) else []
                yield pytest.param(page.name, text, id=f"{page.name}:{n}", marks=marks)


def command_lines():
    for page in PAGES:
        for n, info, text in fenced_blocks(page):
            if info not in ("", "bash", "sh", "console", "shell"):
                continue
            lines = text.splitlines()
            for k, line in enumerate(lines):
                if k and lines[k - 1].endswith("\\"):
                    continue  # joined to the line it continues
                j = k
                while line.endswith("\\") and j + 1 < len(lines):
                    j += 1
                    line = line[:-1] + " " + lines[j]
                for part in re.split(r"&&|\|\||\||;", line.split("#")[0]):
                    part = part.split(">")[0].strip()
                    if part.startswith("stylekit ") and not re.search(r"\[|\b[A-Z]{3,}\b", part):  # not a synopsis
                        yield pytest.param(part, id=f"{page.name}:{n + 1 + k}")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    for name, source in FILES.items():
        shutil.copy(EX / source, d / name)
    for sub, names in {"photos": [CAT, "astronaut_nasa.jpg"], "paintings": [WAVE, GAUGUIN]}.items():
        (d / sub).mkdir()
        for name in names:
            shutil.copy(EX / name, d / sub / name)
    return d


def prelude(folder: Path, text: str) -> dict:
    """The names the prose around a block defines, for the blocks that use them."""
    ns: dict = {"__name__": "__doc_example__"}
    if "import stylekit" not in text:
        ns["stylekit"] = stylekit
    ns["transfer"] = stylekit.transfer  # imported by the page's first block
    cat, wave, gauguin = (Image.open(folder / n).convert("RGB") for n in ("cat.jpg", "wave.jpg", "gauguin.jpg"))
    ns.update(cat=cat, wave=wave, gauguin=gauguin, photo1=cat, photo2=cat.resize((200, 150)), photo3=Image.open(folder / "b.jpg"))
    if "st(" in text and not re.search(r"^st\s*=", text, re.M):
        ns["st"] = stylekit.StyleTransfer("cpu", "auto")
    if "left" in text:
        left = np.zeros((256, 384), np.uint8)  # docs/make_controls.py's half mask
        left[:, :192] = 255
        ns["left"] = left
    if "in frames" in text:
        from clips import make_clip

        ns["frames"] = make_clip(frames=4)
        ns["show"] = lambda frame: ns.setdefault("shown", []).append(frame)
    if "clip.mp4" in text or "in.mp4" in text:
        from clips import make_clip, write_clip

        for name in ("clip.mp4", "in.mp4"):
            if not (folder / name).exists():
                write_clip(folder / name, make_clip(frames=6))
    if "stylekit.onnx" in text and not (folder / "stylekit.onnx").exists():
        pytest.importorskip("onnxruntime")
        stylekit.export_onnx(folder / "stylekit.onnx")
    return ns


@pytest.mark.parametrize("page, text", list(python_blocks()))
def test_python_example_runs(page: str, text: str, folder: Path, monkeypatch):
    for (where, old), new in SMALLER.items():
        if page == where:
            text = text.replace(old, new)
    monkeypatch.chdir(folder)
    ns = prelude(folder, text)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    exec(compile(text, f"<{page} example>", "exec"), ns)

    written = [p for p in folder.rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns]
    for p in written:
        assert p.stat().st_size > 0, f"{page}: the example wrote an empty {p.name}"
        if p.suffix in (".jpg", ".png"):
            with Image.open(p) as im:
                im.load()
    out, content = ns.get("out"), re.search(r'transfer\("([^"]+)"', text)
    if isinstance(out, Image.Image) and content:
        with Image.open(folder / content.group(1)) as im:
            assert out.size == im.size, f"{page}: out is {out.size}, its content {im.size}"
    if "frames" in ns and "show" in ns:
        shown = ns.get("shown", [])
        assert len(shown) == len(ns["frames"]), f"{page}: {len(shown)} frames shown of {len(ns['frames'])}"
        assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in shown)


def test_the_examples_are_found():
    """The collection above is not empty by accident (a renamed page, a changed fence)."""
    ids = [p.id for p in python_blocks()]
    assert any(i.startswith("README.md:") for i in ids) and any(i.startswith("controls.md:") for i in ids), ids
    assert len(list(command_lines())) >= 10


@pytest.mark.parametrize("line", list(command_lines()))
def test_command_line_parses(line: str):
    argv = shlex.split(line)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"`{line}` does not parse (exit {e.code})")
