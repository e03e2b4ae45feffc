"""The training losses: the grid penalty's math, and AdaINLoss putting the terms together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stylekit import VGGEncoder
from stylekit.losses import AdaINLoss, content_loss, grid_loss, style_loss

CAT = Path(__file__).resolve().parents[1] / "stylekit" / "examples" / "chelsea_cat.jpg"


def _photo(size: int = 192) -> torch.Tensor:
    """A real picture: the bundled cat, size x size, (1, 3, H, W) in [0, 1]."""
    with Image.open(CAT) as im:
        a = np.asarray(im.convert("RGB").resize((size * 3 // 2, size)))[:, :size]
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255


def _lattice(pattern: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(C, 8, 8) pattern repeated over an h x w picture from its origin."""
    return pattern.repeat(1, h // 8 + 1, w // 8 + 1)[None, :, :h, :w]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(16, 61), w=st.integers(16, 61), offset=st.floats(-0.5, 0.5))
def test_a_pattern_on_the_lattice_scores_its_mean_square(seed: int, h: int, w: int, offset: float) -> None:
    """Any zero-mean 8 x 8 pattern repeated over the picture scores exactly its mean square,
    whatever the picture's size and whatever constant is added."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(3, 8, 8, generator=g, dtype=torch.float64) * 0.05
    p = p - p.mean((1, 2), keepdim=True)
    x = _lattice(p, h, w) + offset
    assert grid_loss(x).item() == pytest.approx(p.pow(2).mean().item(), rel=1e-5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), amp=st.floats(0.02, 0.1))
def test_a_photo_scores_low_and_a_hatched_photo_high(seed: int, amp: float) -> None:
    photo = _photo()
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(3, 8, 8, generator=g)
    p = amp * (p - p.mean((1, 2), keepdim=True)) / p.std()
    clean, hatched = grid_loss(photo).item(), grid_loss(photo + _lattice(p, 192, 192)).item()
    assert clean < 1e-5  # measured 5.4e-6
    assert hatched > 0.5 * p.pow(2).mean().item() and hatched > 50 * clean


def test_patterns_off_the_lattice_are_not_penalised() -> None:
    """Stripes 3 px or 5 px apart (not a divisor of 8) average out over the lattice."""
    i = torch.arange(120, dtype=torch.float32)
    for period in (3, 5):
        stripes = (0.1 * torch.sin(2 * torch.pi * i / period)).expand(1, 3, 120, 120)
        on_lattice = (0.1 * torch.sin(2 * torch.pi * i / 4)).expand(1, 3, 120, 120)
        assert grid_loss(stripes).item() < 0.01 * grid_loss(on_lattice).item()


def test_gradient_descent_removes_the_hatching_and_keeps_the_picture() -> None:
    photo = _photo()
    p = torch.zeros(3, 8, 8)
    p[:, :4] = 0.04
    p[:, 4:] = -0.04  # horizontal bands 4 px wide: a cross-hatching of period 8
    x = (photo + _lattice(p, 192, 192)).requires_grad_(True)
    opt = torch.optim.SGD([x], lr=20000.0)
    before = grid_loss(x).item()
    for _ in range(50):
        opt.zero_grad()
        grid_loss(x).backward()
        opt.step()
    assert grid_loss(x).item() < 1e-3 * before
    assert (x.detach() - photo).abs().mean().item() < 0.2 * 0.04  # measured 0.0052 against the bands' 0.04


def test_float32_result_for_bf16_pictures_and_small_pictures_refused() -> None:
    x = _photo(32).bfloat16().requires_grad_(True)
    loss = grid_loss(x)
    assert loss.dtype == torch.float32
    loss.backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="at least 16 x 16"):
        grid_loss(torch.rand(1, 3, 15, 64))


@pytest.fixture(scope="module")
def encoder() -> VGGEncoder:
    return VGGEncoder.from_pretrained()


@pytest.mark.parametrize("grid_weight", [0.0, 500.0])
def test_adain_loss_sums_its_terms(encoder: VGGEncoder, grid_weight: float) -> None:
    torch.manual_seed(0)
    image = _photo(64).requires_grad_(True)
    style = torch.rand(1, 3, 64, 64)
    target = encoder.encode(torch.rand(1, 3, 64, 64))
    s_feats = encoder(style, ("relu1_1", "relu2_1", "relu3_1", "relu4_1"))
    total, lc, ls, lg = AdaINLoss(encoder, style_weight=3.0, grid_weight=grid_weight)(image, target, s_feats)
    g = encoder(image, ("relu1_1", "relu2_1", "relu3_1", "relu4_1"))
    assert lc.item() == pytest.approx(content_loss(g["relu4_1"], target).item(), rel=1e-5)
    assert ls.item() == pytest.approx(style_loss(g, s_feats).item(), rel=1e-5)
    assert lg.item() == pytest.approx(grid_loss(image).item(), rel=1e-6) and lg.item() > 0
    assert total.item() == pytest.approx(lc.item() + 3.0 * ls.item() + grid_weight * lg.item(), rel=1e-5)
    assert lg.requires_grad == (grid_weight > 0)  # logged, but not trained on, at weight 0
