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
files go to ``--list``, one per line, for ``tools/ship_decoder.py``. ``--start`` takes such a
list (e.g. the shipped soup's), or a decoder file that is itself an average (e.g.
``stylekit/weights/decoder.safetensors``, which counts as the N exports its ``averaged`` metadata
names: see ``tools/ship_decoder.py``), as the soup to grow: its exports form no ingredients, and
ingredients join only where they beat it. (Do not also pass the exports such an average was made
of: they would count twice.) Confirm the pick with
``benchmarks/quality.py`` (without ``--select``) before shipping: those pairs had no say in it.

``--size 256,512,1024:512`` scores at several sizes (``C`` or content:style short sides ``C:S``)
at once: each size's objective is divided by the shipped decoder's there, and the worst (largest)
of these ratios is what the soup lowers (the shipped decoder scores 1), as shipping asks for a
decoder better at every size; a pick made at one size alone does not see what it costs at another.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tools")]
from quality import DATA, load, pick_pairs, to_tensor  # noqa: E402
from ship_decoder import average, exports_in  # noqa: E402

from stylekit.data import list_images, split_files  # noqa: E402
from stylekit.decoder import Decoder  # noqa: E402
from stylekit.encoder import STYLE_TAPS, VGGEncoder  # noqa: E402
from stylekit.losses import content_loss, style_loss  # noqa: E402
from stylekit.ops import adain  # noqa: E402


def groups(exports: dict[Path, Decoder], size: int) -> list[list[Path]]:
    """Consecutive runs of ``size`` exports (by step) within each folder; a shorter tail is kept."""
    by_dir: dict[Path, list[tuple[int, Path]]] = {}
    for f, d in exports.items():
        by_dir.setdefault(f.parent, []).append((int(d.meta.get("step", 0)), f))
    out = []
    for folder in sorted(by_dir):
        ordered = [f for _, f in sorted(by_dir[folder])]
        out += [ordered[i : i + size] for i in range(0, len(ordered), size)]
    return out


Score = tuple[float, ...]  # (objective, content loss, style loss), or (worst ratio, ratio at each size)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"256,1024:512"`` -> ``[(256, 256), (1024, 512)]``: (content, style) short sides, each at least 16."""
    out = []
    for part in text.split(","):
        c, _, s = part.strip().partition(":")
        try:
            spec = (int(c), int(s or c))
        except ValueError:
            raise ValueError(f"--size: {part.strip()!r} is not a size (use e.g. 256, or 1024:512 for content:style)") from None
        if min(spec) < 16:
            raise ValueError(f"--size: {part.strip()!r}: sides must be at least 16 px")
        out.append(spec)
    return list(dict.fromkeys(out))


def relative(scores: list[Score], refs: list[Score]) -> Score:
    """One size: its score as it is. Several: (the largest of the objective's ratios to ``refs``, each ratio)."""
    if len(scores) == 1:
        return scores[0]
    ratios = [s[0] / r[0] for s, r in zip(scores, refs, strict=True)]
    return max(ratios), *ratios


def label(spec: tuple[int, int]) -> str:
    return str(spec[0]) if spec[0] == spec[1] else f"{spec[0]}:{spec[1]}"


def greedy(
    ingredients: list[tuple[Score, list[Path]]],
    evaluate: Callable[[list[Path]], Score],
    start: tuple[Score, list[Path]] | None = None,
    report: Callable[[list[Path], Score, bool], None] | None = None,
) -> tuple[Score, list[Path]]:
    """Grow a soup: from ``start`` (a scored soup; else the best ingredient), try each other
    ingredient once, best first, keeping it where the soup's objective drops;
    ``report(ingredient, score, kept)`` is called after each try. Returns the soup's score and files."""
    order = sorted(ingredients, key=lambda x: x[0][0])
    if start:
        best, files = start[0], list(start[1])
    else:
        (best, files), order = order[0], order[1:]
    for _, g in order:
        trial = evaluate([*files, *g])
        kept = trial[0] < best[0]
        if report:
            report(g, trial, kept)
        if kept:
            best, files = trial, [*files, *g]
    return best, files


def as_shipped(decoder: Decoder) -> Decoder:
    """``decoder``, its weights rounded in place to the dtype a shipped file stores (fp16), so that
    a soup is scored as it would ship, not in the fp32 of the in-memory average."""
    decoder.load_state_dict({k: v.half().float() for k, v in decoder.state_dict().items()})
    return decoder


class Scorer:
    """content + λ × style loss over fixed pairs, with the pairs' targets encoded once."""

    def __init__(
        self, pairs: list[tuple[Path, Path]], size: int, style_weight: float,
        style_size: int | None = None, enc: VGGEncoder | None = None,
    ) -> None:  # fmt: skip
        self.enc = enc or VGGEncoder.from_pretrained()
        self.style_weight = style_weight
        self.items = []
        for cpath, spath in pairs:
            c, s = to_tensor(load(cpath, size)), to_tensor(load(spath, style_size or size))
            fs = self.enc(s, STYLE_TAPS)
            self.items.append((adain(self.enc.encode(c), fs["relu4_1"]), fs))

    def __call__(self, decoder: Decoder) -> Score:
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
    ap.add_argument("--size", default="256", help="short side of content and style; several, comma-separated, "
                    "each N or content:style (e.g. 256,512,1024:512), are scored as ratios to the shipped decoder")
    ap.add_argument("--style-weight", type=float, default=3.5, help="λ in content + λ × style")
    ap.add_argument("--list", type=Path, help="write the chosen files here, one per line")
    ap.add_argument("--start", type=Path, help="a --list file, or an averaged decoder (e.g. the shipped one): "
                    "grow this soup instead of starting from the best group")
    a = ap.parse_args()
    if a.group < 1:
        ap.error("--group must be at least 1")
    try:
        specs = parse_sizes(a.size)
    except ValueError as e:
        ap.error(str(e))
    if a.start and not a.start.is_file():
        ap.error(f"--start: no such file: {a.start}")
    if a.start and a.start.suffix == ".safetensors":
        start = [a.start]
    else:
        start = list(dict.fromkeys(Path(line) for line in a.start.read_text().split())) if a.start else []
    missing = [f for f in [*start, *a.files] if not f.is_file()]
    if missing:
        ap.error(f"{len(missing)} missing exports, e.g. {missing[0]}")
    in_start = set(start)
    if not set(a.files) - in_start:
        ap.error("no exports left to add (every file is in --start)")
    torch.set_grad_enabled(False)

    _, cval = split_files(list_images(DATA / "content"), 0.02)
    _, sval = split_files(list_images(DATA / "style"), 0.02)
    try:
        pairs = pick_pairs(cval, sval, a.pairs, select=True)
    except ValueError as e:
        ap.error(str(e))
    enc = VGGEncoder.from_pretrained()  # one copy for every size
    scorers = [Scorer(pairs, c, a.style_weight, s, enc) for c, s in specs]
    sizes = ", ".join(label(spec) for spec in specs)
    print(f"{len(pairs)} selection pairs at {sizes} px; objective = content + {a.style_weight:g} x style")
    shipped = Decoder.from_pretrained().eval()
    refs = [score(shipped) for score in scorers]
    for spec, r in zip(specs, refs, strict=True):
        print(f"shipped (step {shipped.meta.get('step')}) at {label(spec)}: {r[0]:.4f} ({r[1]:.4f} / {r[2]:.4f})")
    if len(specs) > 1:
        print("below: the worst of the objective's ratios to the shipped decoder's (ratio at each size)")

    def show(s: Score) -> str:
        if len(specs) == 1:
            return f"{s[0]:.4f} ({s[1]:.4f} / {s[2]:.4f})"
        return f"{s[0]:.4f} (" + ", ".join(f"{label(p)}: {r:.4f}" for p, r in zip(specs, s[1:], strict=True)) + ")"

    exports = {f: Decoder.from_file(f) for f in dict.fromkeys([*start, *a.files])}

    def evaluate(files: list[Path]) -> Score:
        decoder = as_shipped(average([exports[f] for f in files]))  # every export weighs the same (an average: N)
        return relative([score(decoder) for score in scorers], refs)

    ingredients = []
    for g in groups({f: d for f, d in exports.items() if f not in in_start}, a.group):
        s = evaluate(g)
        steps = [int(exports[f].meta.get("step", 0)) for f in g]
        print(f"  {g[0].parent}  steps {steps[0]}-{steps[-1]}: {show(s)}", flush=True)
        ingredients.append((s, g))

    def report(g: list[Path], trial: Score, kept: bool) -> None:
        print(f"  + {g[0].parent} ({len(g)} exports from {g[0].name}): {show(trial)} {'kept' if kept else 'dropped'}", flush=True)

    seed = None
    if start:
        seed = (evaluate(start), start)
        print(f"soup starts with --start's {sum(exports_in(exports[f]) for f in start)} exports: {show(seed[0])}")
    else:
        print("soup starts with the best group")
    best, files = greedy(ingredients, evaluate, seed, report)
    shipped_is = f"{refs[0][0]:.4f}" if len(specs) == 1 else "1 at each size"
    print(f"soup: {sum(exports_in(exports[f]) for f in files)} exports: {show(best)}; shipped {shipped_is}")
    if a.list:
        a.list.write_text("".join(f"{f}\n" for f in files))
        print(f"chosen files: {a.list}")


if __name__ == "__main__":
    main()
