"""Training refuses damaged or foreign weight files up front, and leaves them as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from stylekit import WeightsError
from stylekit.train import train
from stylekit.weights import ENCODER

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "stylekit" / "examples").glob("*.jpg"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("safety_data")
    out = {}
    for kind, srcs in (("content", EXAMPLES[:2]), ("style", EXAMPLES[2:])):
        (root / kind).mkdir()
        for i, src in enumerate(srcs):
            with Image.open(src) as im:
                im.convert("RGB").resize((48, 40)).save(root / kind / f"{i}.png")
        out[kind] = str(root / kind)
    return out


def _kw(folders, out: Path, **over) -> dict:
    return dict(content_dir=folders["content"], style_dir=folders["style"], out=str(out), steps=2, batch_size=2,
                crop=32, workers=0, device="cpu", dtype="fp32", progress=False, val_fraction=0.0, **over)  # fmt: skip


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_checkpoint_is_refused_and_kept(folders, tmp_path: Path, damage: str) -> None:
    out = tmp_path / "run"
    out.mkdir()
    ckpt = out / "checkpoint.safetensors"
    data = b"not a checkpoint" * 64 if damage == "garbage" else ENCODER.path.read_bytes()[:5000]
    ckpt.write_bytes(data)
    with pytest.raises(WeightsError, match="checkpoint.safetensors"):
        train(**_kw(folders, out))
    assert ckpt.read_bytes() == data  # not overwritten by a fresh run
    assert not (out / "decoder.safetensors").exists()


def test_foreign_init_file_is_refused(folders, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not a stylekit decoder"):
        train(**_kw(folders, tmp_path / "run", init=str(ENCODER.path)))
    with pytest.raises(WeightsError, match="not found"):
        train(**_kw(folders, tmp_path / "run", init=str(tmp_path / "missing.safetensors")))
