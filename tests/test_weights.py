"""The weights registry: shipped files and their sha256, corrupted files, and no pickle anywhere."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stylekit
from stylekit import WeightsError
from stylekit.encoder import CONV_SHAPES
from stylekit.weights import ENCODER, load_file, save_file

PKG = Path(stylekit.__file__).resolve().parent
WEIGHTS = PKG / "weights"


def _sums() -> dict[str, str]:
    out = {}
    for line in (WEIGHTS / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            out[name.lstrip("*")] = digest
    return out


def test_shipped_encoder_matches_its_recorded_sha256() -> None:
    sums = _sums()
    assert ENCODER.name in sums
    assert ENCODER.sha256 == sums[ENCODER.name]
    assert hashlib.sha256(ENCODER.path.read_bytes()).hexdigest() == sums[ENCODER.name]
    tensors, meta = ENCODER.load()
    assert meta["format"] == "pt"
    assert set(tensors) == {f"{n}.{k}" for n in CONV_SHAPES for k in ("codes", "table", "bias")}


@pytest.mark.parametrize("name", sorted(_sums()))
def test_every_recorded_file_is_shipped_and_matches(name: str) -> None:
    path = WEIGHTS / name
    assert path.is_file(), f"SHA256SUMS lists {name}, which is not in stylekit/weights/"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == _sums()[name]


def test_every_shipped_file_is_recorded() -> None:
    shipped = {p.name for p in WEIGHTS.glob("*.safetensors")}
    missing = shipped - set(_sums())
    assert not missing, f"add the sha256 of {sorted(missing)} to stylekit/weights/SHA256SUMS"


@pytest.fixture(scope="module")
def encoder_bytes() -> bytes:
    return ENCODER.path.read_bytes()


def test_one_flipped_byte_fails_the_hash(tmp_path: Path, encoder_bytes: bytes) -> None:
    data = bytearray(encoder_bytes)
    data[len(data) // 2] ^= 0x01  # inside the tensor data: still valid safetensors
    path = tmp_path / ENCODER.name
    path.write_bytes(bytes(data))
    load_file(path)  # structurally fine ...
    with pytest.raises(WeightsError, match=r"corrupted or was replaced: sha256 [0-9a-f]{64} does not match"):
        load_file(path, sha256=ENCODER.sha256)  # ... but not the file we ship


def test_truncated_copy_fails(tmp_path: Path, encoder_bytes: bytes) -> None:
    path = tmp_path / ENCODER.name
    path.write_bytes(encoder_bytes[: len(encoder_bytes) - 1000])
    with pytest.raises(WeightsError, match="sha256"):
        load_file(path, sha256=ENCODER.sha256)
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        load_file(path)


@pytest.mark.parametrize(
    "data",
    [b"", b"abc", b"hello, I am not a safetensors file\n" * 20, b"\xff" * 64, b"\x08\x00\x00\x00\x00\x00\x00\x00{notjson"],
    ids=["empty", "tiny", "text", "huge-header", "bad-json"],
)
def test_garbage_is_a_weights_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(data)
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        load_file(path)


def test_missing_and_directory_are_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_file(tmp_path / "absent.safetensors")
    with pytest.raises(WeightsError, match="cannot read"):
        load_file(tmp_path)


def _small_file_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "small.safetensors"
    save_file(path, {"a": torch.arange(12, dtype=torch.float32).view(3, 4), "b": torch.arange(5)}, {"step": "3"})
    return path.read_bytes()


def test_save_file_is_atomic_and_tagged(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"old contents")
    digest = save_file(path, {"x": torch.ones(2, 2)}, {"k": "v"})
    assert not (tmp_path / "w.safetensors.tmp").exists()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    tensors, meta = load_file(path, sha256=digest)
    assert meta == {"format": "pt", "k": "v"}
    assert torch.equal(tensors["x"], torch.ones(2, 2))


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 10_000), pos=st.integers(0, 10_000), byte=st.integers(0, 255), truncate=st.booleans())
def test_damaged_files_load_or_raise_weights_error(tmp_path_factory, cut, pos, byte, truncate) -> None:
    """Any truncation or single-byte change either still parses or raises WeightsError: never a
    crash, another exception type or a hang."""
    tmp = tmp_path_factory.mktemp("fuzz")
    data = bytearray(_small_file_bytes(tmp))
    if truncate:
        data = data[: cut % len(data)]
    else:
        data[pos % len(data)] = byte
    path = tmp / "damaged.safetensors"
    path.write_bytes(bytes(data))
    try:
        tensors, meta = load_file(path)
    except WeightsError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())


# ------------------------------------------------------------------ no unpickling anywhere

_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
_UNSAFE_CALLS = {"torch.load", "torch.jit.load", "torch.hub.load", "torch.hub.load_state_dict_from_url",
                 "torch.serialization.load", "pickle.load", "pickle.loads"}  # fmt: skip


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _findings(source: str, filename: str) -> list[str]:
    bad = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in _PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod.split(".")[0] in _PICKLE_MODULES:
                bad.append(f"from {mod} import ...")
            if mod in ("torch", "torch.jit", "torch.serialization", "torch.hub") and any(a.name == "load" for a in node.names):
                bad.append(f"from {mod} import load")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in _UNSAFE_CALLS:
                bad.append(f"{name}()")
            for k in node.keywords:  # pickle switches must be constants that turn pickle off
                safe = {"allow_pickle": False, "weights_only": True}.get(k.arg)
                if safe is not None and not (isinstance(k.value, ast.Constant) and k.value.value is safe):
                    bad.append(f"{name}({k.arg}=...) on line {node.lineno}")
    return [f"{filename}: {b}" for b in bad]


def test_the_scanner_finds_what_it_should() -> None:
    # the check itself must be able to fail
    for src in ("import pickle", "import torch\ntorch.load('x')", "from torch import load",
                "import numpy as np\nnp.load('x', allow_pickle=True)", "import torch\ntorch.jit.load('m')",
                "from pickle import loads", "import dill"):  # fmt: skip
        assert _findings(src, "x.py"), src
    assert _findings("import numpy\nflag = True\nnumpy.load('x', allow_pickle=flag)", "x.py")
    assert _findings("import x\nx.read('f', weights_only=False)", "x.py")
    assert not _findings("import numpy\nnumpy.load('x', allow_pickle=False)", "x.py")
    # code, not prose: docs may tell users how to open an exported TorchScript file
    assert not _findings('"""Nothing here unpickles data; open it with ``torch.jit.load``."""\n'
                         "from safetensors.torch import load\nload(b'')\n", "x.py")


def test_no_pickle_in_the_package() -> None:
    files = sorted(PKG.rglob("*.py"))
    assert len(files) >= 10
    bad = [f for p in files for f in _findings(p.read_text(), str(p.relative_to(PKG.parent)))]
    assert not bad, f"unsafe deserialisation in the package: {bad}"
