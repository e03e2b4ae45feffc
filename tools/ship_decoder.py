"""Ship a trained decoder: copy a run's ``decoder.safetensors`` into the package and record its sha256.

    python tools/ship_decoder.py runs/ship/decoder.safetensors --history "steps 7472-12000 at 192 px crops"
    python tools/ship_decoder.py snapshots/*.safetensors --history "..."   # their average
    python tools/ship_decoder.py snapshots/*.safetensors --out /tmp/avg.safetensors  # try it first

Several files (exports of one run, e.g. one every 100 steps) are averaged weight by weight (a
uniform Polyak average: it smooths out the step-to-step noise of the last weights); the metadata
is the latest one's (by step), with ``averaged`` saying over how many exports and which steps.
Exports of several runs of one line of training may be averaged too (``tools/soup.py`` picks
which); the same export twice (byte for byte) is refused. A file that is itself such an average
(its ``averaged`` metadata says "N exports") counts as its N exports, so the shipped decoder
grown with new exports, ``ship_decoder.py stylekit/weights/decoder.safetensors new/*.safetensors``,
is the uniform average of all of them (to the shipped file's fp16 rounding), with no need to keep
the exports it was made of. (Do not list it beside those exports too: they would count twice.)

The decoder is validated first (``Decoder.from_file``: keys, shapes, dtypes, finite values).
Its metadata keeps everything training wrote (step, loss weights, date, ...), with the data
folders written relative to the shared data (no machine's absolute paths in the package), and
``history`` is the shipped decoder's history with ``--history`` appended, so the file says how
it was trained across sessions. Then ``stylekit/weights/SHA256SUMS`` gets the new hash. Check
the result with ``python benchmarks/quality.py`` (it compares with the previous shipped decoder
from git) before committing.

With ``--out FILE`` the same file (weights and metadata) is written to FILE instead and the
package is left alone: ``python benchmarks/quality.py --decoder FILE`` then measures it against
the shipped one.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stylekit.decoder import Decoder  # noqa: E402
from stylekit.weights import load_file, sha256_of  # noqa: E402

WEIGHTS = ROOT / "stylekit" / "weights"
TARGET = WEIGHTS / "decoder.safetensors"


AVERAGED = re.compile(r"(\d+) exports( of several runs)?, steps (\d+)-(\d+)")
"""The ``averaged`` metadata this tool writes, e.g. ``24 exports, steps 54435-62333``."""


def exports_in(decoder: Decoder) -> int:
    """How many exports ``decoder`` stands for: N for an average of N (``averaged`` metadata), else 1."""
    m = AVERAGED.fullmatch(decoder.meta.get("averaged", ""))
    return int(m.group(1)) if m else 1


def average(decoders: list[Decoder]) -> Decoder:
    """A new decoder with the weight-by-weight mean of ``decoders`` (summed in float64), each
    weighted by :func:`exports_in`: the uniform mean of every export they stand for."""
    states = [d.state_dict() for d in decoders]
    w = torch.tensor([float(exports_in(d)) for d in decoders], dtype=torch.float64)
    w = w / w.sum()
    out = Decoder()
    out.load_state_dict({k: torch.einsum("n,n...->...", w, torch.stack([s[k].double() for s in states])).float() for k in states[0]})
    return out.eval()


def averaged_meta(decoders: list[Decoder]) -> str:
    """The ``averaged`` metadata of their average: how many exports, over which steps."""
    steps, several = [], False
    for d in decoders:
        m = AVERAGED.fullmatch(d.meta.get("averaged", ""))
        if m:
            steps += [int(m.group(3)), int(m.group(4))]
            several = several or bool(m.group(2))
        else:
            steps.append(int(d.meta.get("step", 0)))
    singles = [int(d.meta.get("step", 0)) for d in decoders if not AVERAGED.fullmatch(d.meta.get("averaged", ""))]
    several = several or len(set(singles)) < len(singles)  # runs from one decoder share steps
    runs = " of several runs" if several else ""
    return f"{sum(exports_in(d) for d in decoders)} exports{runs}, steps {min(steps)}-{max(steps)}"


def relative_data_dir(path: str) -> str:
    """``/any/where/shared/data/train/content`` -> ``shared/data/train/content``."""
    m = re.search(r"(shared/data/.*)$", path.replace("\\", "/"))
    return m.group(1) if m else Path(path).name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("decoder", type=Path, nargs="+", help="decoder.safetensors written by stylekit train (several: averaged)")
    ap.add_argument("--history", default="", help="what this run did, appended to the shipped history")
    ap.add_argument("--out", type=Path, default=None, help="write here instead of into the package (SHA256SUMS untouched)")
    a = ap.parse_args()

    seen: dict[str, Path] = {}
    for f in a.decoder:
        digest = sha256_of(f.read_bytes()) if f.is_file() else str(f)
        if digest in seen:
            sys.exit(f"error: {f} and {seen[digest]} are the same export (byte for byte)")
        seen[digest] = f
    decoders = sorted((Decoder.from_file(f) for f in a.decoder), key=lambda d: int(d.meta.get("step", 0)))
    new = decoders[-1]
    meta = dict(new.meta)
    if len(decoders) > 1:
        new = average(decoders)
        meta["averaged"] = averaged_meta(decoders)
    meta.pop("format", None)
    for key in ("content_dir", "style_dir"):
        if key in meta:
            meta[key] = relative_data_dir(meta[key])
    if a.out is not None and a.out.resolve() == TARGET.resolve():
        sys.exit("error: --out is the shipped decoder itself; leave --out out to ship")
    if TARGET.exists():
        _, old = load_file(TARGET)
        parts = [p for p in (old.get("history", ""), a.history) if p]
        if int(old.get("step", 0)) >= int(meta.get("step", 0)):
            print(f"warning: the shipped decoder is at step {old.get('step')}, this one at {meta.get('step')}")
    else:
        parts = [a.history] if a.history else []
    if parts:
        meta["history"] = "; ".join(parts)
    what = a.decoder[0] if len(a.decoder) == 1 else f"the average of {len(a.decoder)} decoders ({meta['averaged']})"
    if a.out is not None:  # the file shipping would write, elsewhere
        sha = new.save(a.out, metadata=meta)
        print(f"wrote {what} to {a.out} (step {meta.get('step')}, sha256 {sha[:16]}...); the package is unchanged")
        return
    sha = new.save(TARGET, metadata=meta)

    sums = WEIGHTS / "SHA256SUMS"
    lines = [ln for ln in sums.read_text().splitlines() if ln.strip() and not ln.endswith("  decoder.safetensors")]
    sums.write_text("\n".join([*lines, f"{sha}  decoder.safetensors"]) + "\n")
    Decoder.from_pretrained()  # loads through the registry: the sha256 just recorded must match
    print(f"shipped {what} as {TARGET.relative_to(ROOT)} (step {meta.get('step')}, sha256 {sha[:16]}...)")


if __name__ == "__main__":
    main()
