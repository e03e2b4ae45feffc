"""Seconds per training step, with stylekit's hand-written gradients against autograd's own.

    python benchmarks/train_step.py                     # batch 8, crops 128 / 192 / 256, bf16 where fast
    python benchmarks/train_step.py --crops 256 --batch-size 4 --dtype fp32

One step is what ``stylekit.train`` runs: the model forward with the training features, the
AdaIN loss, backward and an Adam step (random pictures; the time does not depend on them).
"baseline" is the same step with the reflection padding and the channel statistics
differentiated by autograd (slices + ``cat``, ``var_mean`` on a float32 copy), as before they
had hand-written gradients; "stylekit" is the shipped code. Median of ``--repeats`` steps after
a warm-up step, both measured in this run, interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import stylekit.encoder  # noqa: E402
import stylekit.losses  # noqa: E402
import stylekit.ops  # noqa: E402
import stylekit.padding  # noqa: E402
from stylekit import AdaINModel, Decoder, VGGEncoder  # noqa: E402
from stylekit.device import resolve_dtype  # noqa: E402
from stylekit.losses import AdaINLoss  # noqa: E402
from stylekit.train import train_step  # noqa: E402


def _autograd_pad(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2], x.shape[-1]
    i, j = int(h > 1), int(w > 1)
    x = torch.cat([x[..., i : i + 1, :], x, x[..., h - 1 - i : h - i, :]], dim=-2)
    return torch.cat([x[..., j : j + 1], x, x[..., w - 1 - j : w - j]], dim=-1)


def _autograd_mean_std(feat: torch.Tensor, eps: float = 1e-5):
    var, mean = torch.var_mean(feat.float(), dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


@contextmanager
def baseline():
    """Swap in the autograd-differentiated padding and statistics everywhere training uses them."""
    saved = [(m, n, getattr(m, n)) for m, n in [(stylekit.padding, "reflect_pad"), (stylekit.encoder, "reflect_pad"),
                                               (stylekit.ops, "mean_std"), (stylekit.losses, "mean_std")]]  # fmt: skip
    for m, n, _ in saved:
        setattr(m, n, _autograd_pad if n == "reflect_pad" else _autograd_mean_std)
    try:
        yield
    finally:
        for m, n, f in saved:
            setattr(m, n, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, nargs="+", default=[128, 192, 256])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--tune-malloc", action="store_true", help="call stylekit.device.tune_malloc() first (as the CLI does)")
    a = ap.parse_args()
    if a.tune_malloc:
        import speed

        from stylekit.device import tune_malloc

        speed.TUNED.append(tune_malloc())
    dev = torch.device("cpu")
    dtype = resolve_dtype(dev, a.dtype)
    torch.manual_seed(0)
    model = AdaINModel(VGGEncoder.from_pretrained(), Decoder()).to(memory_format=torch.channels_last)
    loss_fn = AdaINLoss(model.encoder, 10.0)
    opt = torch.optim.Adam(model.decoder.parameters(), lr=1e-6)

    def step(c: torch.Tensor, s: torch.Tensor) -> float:
        t0 = time.perf_counter()
        train_step(model, loss_fn, opt, c, s, dev, dtype)  # what stylekit.train runs per step
        return time.perf_counter() - t0

    from speed import hardware

    print(f"torch {torch.__version__}, {dtype}, batch {a.batch_size}, channels-last")
    print(hardware("cpu"))
    print(f"{'crop':>6}{'baseline s':>12}{'stylekit s':>12}{'stylekit / baseline':>21}")
    for crop in a.crops:
        c, s = (torch.rand(a.batch_size, 3, crop, crop).contiguous(memory_format=torch.channels_last) for _ in range(2))
        times: dict[str, list[float]] = {"baseline": [], "stylekit": []}
        for i in range(a.repeats + 1):
            with baseline():
                t_base = step(c, s)
            t_ours = step(c, s)
            if i:  # the first round warms up both
                times["baseline"].append(t_base)
                times["stylekit"].append(t_ours)
        b, o = statistics.median(times["baseline"]), statistics.median(times["stylekit"])
        print(f"{crop:>6}{b:>12.3f}{o:>12.3f}{o / b:>21.2f}")


if __name__ == "__main__":
    main()
