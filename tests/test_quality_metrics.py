"""The measures benchmarks/quality.py reports (its numbers go into the docs), checked on pictures
whose answer is known."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location("quality", Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py")
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def _smooth(seed: int = 0, size: int = 128) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(3, 1, size, size, generator=g)
    return quality.gaussian(noise, 2.0).view(1, 3, size, size)  # the blur takes one channel


def test_grid_peak_is_about_one_without_a_grid() -> None:
    assert 0.5 < quality.grid_peak(_smooth()) < 2.0


def test_grid_peak_finds_a_four_pixel_grid() -> None:
    x = _smooth()
    clean = quality.grid_peak(x)
    i = torch.arange(x.shape[-1])
    pattern = 0.02 * ((i % 4 < 2).float() - 0.5)  # 4 px period, 2% of the range
    gridded = x + pattern.view(1, 1, 1, -1) + pattern.view(1, 1, -1, 1)
    assert quality.grid_peak(gridded) > 5 * clean


def test_ssim_blurred_is_one_for_the_same_picture_and_negative_for_its_negative() -> None:
    x = _smooth()
    a = 0.5 + 0.2 * (x - x.mean()) / x.std()  # a picture with contrast (SSIM's constants assume [0, 1])
    assert abs(quality.ssim_blurred(a, a) - 1.0) < 1e-6
    assert quality.ssim_blurred(a, 1 - a) < 0  # the negative: every structure inverted


def test_grad_energy_is_zero_for_a_flat_picture_and_grows_with_texture() -> None:
    flat = torch.full((1, 3, 32, 32), 0.5)
    assert quality.grad_energy(flat) == 0.0
    assert quality.grad_energy(_smooth()) < quality.grad_energy(torch.rand(1, 3, 128, 128))


def test_selection_pairs_share_no_photo_with_any_measuring_set(tmp_path) -> None:
    contents = [tmp_path / f"c{i:02}.jpg" for i in range(47)]
    styles = [tmp_path / f"s{i:02}.jpg" for i in range(21)]
    select = quality.pick_pairs(contents, styles, 100, select=True)
    assert len(select) == 47 - 21  # every photo beyond the reach of the measuring pairs
    measured = {c for n in range(1, 100) for c, _ in quality.pick_pairs(contents, styles, n)}
    assert measured == set(contents[:21])
    assert not measured & {c for c, _ in select}
    assert [s for _, s in select[:2]] == [styles[quality.SELECT_SHIFT], styles[quality.SELECT_SHIFT + 1]]
    assert quality.pick_pairs(contents, styles, 16) == list(zip(contents[:16], styles[:16]))
    shifted = quality.pick_pairs(contents, styles, 100, shift=10)
    assert [c for c, _ in shifted] == contents[:21] and shifted[0][1] == styles[10] and shifted[11][1] == styles[0]
    assert not set(shifted) & set(quality.pick_pairs(contents, styles, 100))  # every pair new
    with pytest.raises(ValueError, match="none spare"):
        quality.pick_pairs(contents[:21], styles, 8, select=True)


def test_quality_refuses_bad_arguments() -> None:
    script = Path(quality.__file__)
    done = subprocess.run([sys.executable, str(script), "--select", "--shift", "1", "--no-baseline"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "--shift re-pairs the measuring photos" in done.stderr, done.stderr
    done = subprocess.run([sys.executable, str(script), "--style-size", "0", "--no-baseline"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "--style-size must be at least 16 px, got 0" in done.stderr, done.stderr
