"""The package's types check with mypy (the settings in pyproject.toml), and the overloads of
``transfer`` / ``StyleTransfer.__call__`` give the result the content's type: a user's type
checker sees a ``PIL.Image`` for a path, an array for an array, a list for a list, and flags
misuse (the lines marked ``# error`` below must be reported, and only they)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_CODE = """\
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typing_extensions import assert_type

import stylekit

st = stylekit.StyleTransfer("cpu")
wave = st.encode_style("b.jpg")
assert_type(stylekit.transfer("a.jpg", "b.jpg", alpha=0.7), Image.Image)
assert_type(stylekit.transfer(Path("a.jpg"), "b.jpg", size=64, device="cpu", dtype="bf16"), Image.Image)
assert_type(stylekit.transfer(Image.new("RGB", (32, 32)), ["b.jpg", wave], style_weights=[1, 2]), Image.Image)
assert_type(stylekit.transfer(Path("a.jpg").read_bytes(), "b.jpg"), Image.Image)
with open("a.jpg", "rb") as f:
    assert_type(st(f, open("b.jpg", "rb")), Image.Image)
assert_type(st(np.zeros((8, 8, 3), np.uint8), wave), np.ndarray)
assert_type(stylekit.transfer(torch.rand(3, 8, 8), "b.jpg", method="wct", tile="auto"), torch.Tensor)
assert_type(stylekit.transfer(["a.jpg", "c.jpg"], "b.jpg"), list[Image.Image])
paths: list[str] = ["a.jpg"]
assert_type(st(paths, "b.jpg", preserve_color="luminance"), list[Image.Image])
assert_type(st([torch.rand(3, 8, 8)], wave), list[torch.Tensor])
stylekit.transfer("a.jpg", "b.jpg").shape  # error: a PIL image has no .shape
stylekit.transfer("a.jpg", "b.jpg", sise=64)  # error: no such option
stylekit.transfer("a.jpg", "b.jpg", method="fast")  # error: not a method
st("a.jpg", "b.jpg", device="cpu")  # error: a StyleTransfer's device is fixed
"""


@pytest.mark.slow
def test_package_and_user_code_type_check(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is in the dev extra")
    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    args = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    out, err, _ = api.run([*args, str(ROOT / "stylekit"), str(user)])
    assert not err, err
    errors = [line for line in out.splitlines() if ": error:" in line]
    in_package = [e for e in errors if not e.startswith(str(user))]
    assert not in_package, "\n".join(in_package)
    flagged = {int(re.match(r".*?:(\d+):", e).group(1)) for e in errors}  # type: ignore[union-attr]
    expected = {n for n, line in enumerate(USER_CODE.splitlines(), 1) if "# error" in line}
    assert len(expected) == 4
    assert flagged == expected, out
