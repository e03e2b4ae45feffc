"""Choose which decoder exports to average, on pairs that measuring never sees (a greedy soup).

    python tools/soup.py runs/a/snaps/*.safetensors runs/b/snaps/*.safetensors --group 4 --list soup.txt
    python tools/ship_decoder.py $(cat soup.txt) --out /tmp/soup.safetensors   # then measure it

Exports (e.g. one every 100 steps, of one run or of several runs of one line of training, each
started from a decoder shipped from it, so that their weights stay close enough to average) are
cut into groups of ``--group`` consecutive steps of one folder. Each group's uniform average
is an ingredient. Ingredients are scored by content + λ × style loss on the selection pairs of
``benchmarks/quality.py --select`` (validation photos that no measuring set uses), best first;
then, greedily, each ingredient joins the soup if the soup's average scores better with it
(Wortsman et al. 2022, "Model soups"); every export in the soup weighs the same. The chosen
files go to ``--list``, one per line, for ``tools/ship_decoder.py``. Confirm the pick with
``benchmarks/quality.py`` (without ``--select``) before shipping: those pairs had no say in it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality import DATA, load, pick_pairs, to_tensor  # noqa: E402

from stylekit.data import list_images, split_files  # noqa: E402
from stylekit.decoder import Decoder  # noqa: E402
from stylekit.encoder import STYLE_TAPS, VGGEncoder  # noqa: E402
from stylekit.losses import content_loss, style_loss  # noqa: E402
from stylekit.ops import adain  # noqa: E402


def groups(files: list[Path], size: int) -> list[list[Path]]:
    """Consecutive runs of ``size`` exports (by step) within each folder; a shorter tail is kept."""
    by_dir: dict[Path, list[tuple[int, Path]]] = {}
    for f in files:
        by_dir.setdefault(f.parent, []).append((int(Decoder.from_file(f).meta.get("step", 0)), f))
    out = []
    for d in sorted(by_dir):
        ordered = [f for _, f in sorted(by_dir[d])]
        out += [ordered[i : i + size] for i in range(0, len(ordered), size)]
    return out


def average(decoders: list[Decoder]) -> Decoder:
    """Uniform weight-by-weight average (in float64, as ship_decoder does)."""
    out = Decoder()
    states = [d.state_dict() for d in decoders]
    with torch.no_grad():
        out.load_state_dict({k: torch.stack([s[k].double() for s in states]).mean(0).float() for k in states[0]})
    return out.eval()


class Scorer:
    """content + λ × style loss over fixed pairs, with the pairs' targets encoded once."""

    def __init__(self, pairs: list[tuple[Path, Path]], size: int, style_weight: float) -> None:
        self.enc = VGGEncoder.from_pretrained()
        self.style_weight = style_weight
        self.items = []
        for cpath, spath in pairs:
            c, s = to_tensor(load(cpath, size)), to_tensor(load(spath, size))
            fs = self.enc(s, STYLE_TAPS)
            self.items.append((adain(self.enc.encode(c), fs["relu4_1"]), fs))

    def __call__(self, decoder: Decoder) -> tuple[float, float, float]:
        """(objective, content loss, style loss), means over the pairs."""
        cl = sl = 0.0
        for t, fs in self.items:
            fy = self.enc(decoder(t).clamp(0, 1), STYLE_TAPS)
            cl += float(content_loss(fy["relu4_1"], t))
            sl += float(style_loss(fy, fs))
        cl, sl = cl / len(self.items), sl / len(self.items)
        return cl + self.style_weight * sl, cl, sl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+", help="decoder exports (decoder.safetensors copies)")
    ap.add_argument("--group", type=int, default=4, help="consecutive exports per ingredient")
    ap.add_argument("--pairs", type=int, default=32, help="selection pairs to score on (at most all of them)")
    ap.add_argument("--size", type=int, default=256, help="short side of content and style")
    ap.add_argument("--style-weight", type=float, default=3.5, help="λ in content + λ × style")
    ap.add_argument("--list", type=Path, help="write the chosen files here, one per line")
    a = ap.parse_args()
    if a.group < 1:
        ap.error("--group must be at least 1")
    torch.set_grad_enabled(False)

    _, cval = split_files(list_images(DATA / "content"), 0.02)
    _, sval = split_files(list_images(DATA / "style"), 0.02)
    score = Scorer(pick_pairs(cval, sval, a.pairs, select=True), a.size, a.style_weight)
    print(f"{len(score.items)} selection pairs at {a.size} px; objective = content + {a.style_weight:g} x style")
    ref = score(Decoder.from_pretrained().eval())
    print(f"shipped (step {Decoder.from_pretrained().meta.get('step')}): {ref[0]:.4f} ({ref[1]:.4f} / {ref[2]:.4f})")

    ingredients = []
    for g in groups(a.files, a.group):
        decs = [Decoder.from_file(f) for f in g]
        s = score(average(decs))
        steps = [int(d.meta.get("step", 0)) for d in decs]
        print(f"  {g[0].parent}  steps {steps[0]}-{steps[-1]}: {s[0]:.4f} ({s[1]:.4f} / {s[2]:.4f})", flush=True)
        ingredients.append((s, g, decs))
    ingredients.sort(key=lambda x: x[0][0])

    best, chosen = ingredients[0][0], list(ingredients[0][2])
    print(f"soup starts with {ingredients[0][1][0].parent}, {len(chosen)} exports: {best[0]:.4f}")
    for _, g, decs in ingredients[1:]:
        trial = score(average([*chosen, *decs]))  # every export weighs the same, as in ship_decoder
        kept = trial[0] < best[0]
        print(f"  + {g[0].parent} ({len(g)} exports from {g[0].name}): {trial[0]:.4f} {'kept' if kept else 'dropped'}", flush=True)
        if kept:
            best, chosen = trial, [*chosen, *decs]
    print(f"soup: {len(chosen)} exports: {best[0]:.4f} ({best[1]:.4f} / {best[2]:.4f}); shipped {ref[0]:.4f}")
    files = [f for _, g, decs in ingredients for f, d in zip(g, decs, strict=True) if any(d is c for c in chosen)]
    if a.list:
        a.list.write_text("".join(f"{f}\n" for f in files))
        print(f"chosen files: {a.list}")


if __name__ == "__main__":
    main()
