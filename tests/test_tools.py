"""tools/ship_decoder.py: averages exports weight by weight, and with --out leaves the package alone."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import torch

from stylekit.decoder import Decoder
from stylekit.weights import load_file

ROOT = Path(__file__).resolve().parents[1]
SHIP = ROOT / "tools" / "ship_decoder.py"
PACKAGE_WEIGHTS = ROOT / "stylekit" / "weights"


def _export(path: Path, step: int, seed: int) -> Decoder:
    torch.manual_seed(seed)
    d = Decoder()
    d.save(path, metadata={"step": str(step), "content_dir": "/somewhere/shared/data/train/content"})
    return Decoder.from_file(path)  # as stored (fp16)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_ship_decoder_out_writes_the_average_and_leaves_the_package_alone(tmp_path: Path) -> None:
    files = [tmp_path / f"dec_{s}.safetensors" for s in (300, 100, 200)]
    decoders = [_export(f, s, seed) for f, s, seed in zip(files, (300, 100, 200), (3, 1, 2), strict=True)]
    before = _digest(PACKAGE_WEIGHTS)
    out = tmp_path / "avg.safetensors"
    done = subprocess.run([sys.executable, str(SHIP), *map(str, files), "--out", str(out), "--history", "a test"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the package is unchanged" in done.stdout
    assert _digest(PACKAGE_WEIGHTS) == before

    tensors, meta = load_file(out)
    assert meta["step"] == "300" and meta["averaged"] == "3 exports, steps 100-300"
    assert meta["content_dir"] == "shared/data/train/content"  # no machine's absolute path
    assert meta["history"].endswith("a test")  # what shipping would write: the shipped history, then this
    states = [d.state_dict() for d in decoders]
    for name, t in tensors.items():
        mean = torch.stack([st[name].double() for st in states]).mean(0)
        torch.testing.assert_close(t.double(), mean, atol=2e-3, rtol=2e-3)  # stored in fp16
    for st in states:  # not a copy of any one export
        assert max((tensors[n].double() - st[n].double()).abs().max().item() for n in tensors) > 1e-2


def test_ship_decoder_refuses_two_exports_of_one_step(tmp_path: Path) -> None:
    files = [tmp_path / f"dec_{i}.safetensors" for i in range(2)]
    for i, f in enumerate(files):
        _export(f, 100, i)
    before = _digest(PACKAGE_WEIGHTS)
    done = subprocess.run([sys.executable, str(SHIP), *map(str, files), "--out", str(tmp_path / "avg.safetensors")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and "same step" in done.stderr
    assert not (tmp_path / "avg.safetensors").exists() and _digest(PACKAGE_WEIGHTS) == before


def test_ship_decoder_out_may_not_be_the_shipped_file(tmp_path: Path) -> None:
    f = tmp_path / "dec.safetensors"
    _export(f, 100, 0)
    before = _digest(PACKAGE_WEIGHTS)
    done = subprocess.run([sys.executable, str(SHIP), str(f), "--out", str(PACKAGE_WEIGHTS / "decoder.safetensors")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and "leave --out out" in done.stderr
    assert _digest(PACKAGE_WEIGHTS) == before
