"""Fill the documentation's gallery with real results of the shipped decoder.

    python docs/make_gallery.py [--size 512] [--device auto]

Writes ``docs/images/gallery/*.jpg``, ``docs/images/demo_sheet.jpg`` (the README's picture:
content | style | ``stylekit demo``'s result) and rewrites ``docs/gallery.md``, which records the
decoder's step and sha256. Rerun it whenever ``stylekit/weights/decoder.safetensors`` changes.
Uses only the bundled example images; a few seconds per picture on a CPU.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import stylekit  # noqa: E402
from stylekit.cli import DEMO_CONTENT, DEMO_SIZE, DEMO_STYLE  # noqa: E402
from stylekit.weights import DECODER  # noqa: E402

DOCS = ROOT / "docs"
OUT = DOCS / "images" / "gallery"
EX = ROOT / "stylekit" / "examples"
CONTENTS = {"cat": EX / "chelsea_cat.jpg", "astronaut": EX / "astronaut_nasa.jpg"}
STYLES = {"wave": EX / "renoir_the_wave_1879_aic81557.jpg", "gauguin": EX / "gauguin_why_are_you_angry_1896_aic19339.jpg"}


def sheet(images: list[Image.Image], height: int, labels: list[str] | None = None) -> Image.Image:
    ims = [im.convert("RGB").resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in images]
    top = 18 if labels else 0
    out = Image.new("RGB", (sum(im.width for im in ims) + 6 * (len(ims) - 1), height + top), "white")
    draw, x = ImageDraw.Draw(out), 0
    for i, im in enumerate(ims):
        out.paste(im, (x, top))
        if labels:
            draw.text((x + 3, 3), labels[i], fill="black")
        x += im.width + 6
    return out


def save(img: Image.Image, name: str) -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    img.save(OUT / name, quality=88, optimize=True)
    return f"images/gallery/{name}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512, help="short side of the results in px")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    if not DECODER.exists():
        sys.exit(f"no shipped decoder at {DECODER.path}: train one and ship it first")
    params = inspect.signature(stylekit.transfer).parameters
    st = stylekit.StyleTransfer(a.device)
    run = lambda c, s, **kw: stylekit.transfer(c, s, size=a.size, device=a.device, **kw)  # noqa: E731
    meta = stylekit.Decoder.from_pretrained().meta
    md = ["# Gallery", "",
          f"Real results of the shipped decoder (step {meta.get('step', '?')}, sha256 `{DECODER.sha256}`), "
          "on the example images bundled with stylekit, made by `python docs/make_gallery.py` "
          f"(short side {a.size} px). The paintings are public domain (Art Institute of Chicago, CC0).", ""]  # fmt: skip

    demo = stylekit.transfer(DEMO_CONTENT, DEMO_STYLE, device=a.device, size=DEMO_SIZE)  # what stylekit demo does
    style_img = Image.open(DEMO_STYLE)
    (DOCS / "images").mkdir(parents=True, exist_ok=True)
    sheet([Image.open(DEMO_CONTENT), style_img, demo], 300).save(DOCS / "images" / "demo_sheet.jpg", quality=88)
    md += ["## `stylekit demo`", "", "![content, style and result](images/demo_sheet.jpg)", ""]

    md += ["## Every content with every style", "", "| content | " + " | ".join(STYLES) + " |",
           "|---|" + "---|" * len(STYLES)]  # fmt: skip
    md.append("| style | " + " | ".join(f"![{n}]({save(Image.open(p).convert('RGB').resize((240, round(240 * Image.open(p).height / Image.open(p).width))), f'style_{n}.jpg')})" for n, p in STYLES.items()) + " |")  # noqa: E501
    for cn, cp in CONTENTS.items():
        cells = [f"![{cn}]({save(Image.open(cp).convert('RGB'), f'content_{cn}.jpg')})"]
        for sn, sp in STYLES.items():
            cells.append(f"![{cn} in the style of {sn}]({save(run(cp, sp), f'{cn}_{sn}.jpg')})")
        md.append("| " + " | ".join(cells) + " |")
    md.append("")

    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    wave = st.encode_style(STYLES["wave"], size=a.size)
    sweep = [st(CONTENTS["cat"], wave, alpha=x, size=a.size) for x in alphas]
    md += ["## Style strength (`alpha`)", "", f"![alpha sweep]({save(sheet(sweep, 180, [f'alpha={x}' for x in alphas]), 'alpha_sweep.jpg')})", ""]  # noqa: E501

    if "style_weights" in params:
        ws = [(1, 0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0, 1)]
        mixes = [run(CONTENTS["cat"], list(STYLES.values()), style_weights=w) for w in ws]
        labels = [f"wave {x:g} / gauguin {y:g}" for x, y in ws]
        md += ["## Mixing two styles (`style_weights`)", "", f"![style interpolation]({save(sheet(mixes, 180, labels), 'mix.jpg')})", ""]  # noqa: E501
    if "preserve_color" in params:
        modes = [None, "luminance", "histogram"]
        outs = [run(CONTENTS["cat"], STYLES["gauguin"], preserve_color=m) for m in modes]
        md += ["## Keeping the photo's colours (`preserve_color`)", "",
               f"![colour preservation]({save(sheet(outs, 200, [f'preserve_color={m}' for m in modes]), 'preserve_color.jpg')})", ""]  # fmt: skip
    if "method" in params:
        outs = [run(CONTENTS["astronaut"], STYLES["wave"], method=m) for m in ("adain", "wct")]
        md += ["## AdaIN and WCT (`method`)", "", f"![adain and wct]({save(sheet(outs, 240, ['adain', 'wct']), 'methods.jpg')})", ""]  # noqa: E501
    (DOCS / "gallery.md").write_text("\n".join(md))
    print(f"wrote {DOCS / 'gallery.md'}, {len(list(OUT.glob('*.jpg')))} images in {OUT} and docs/images/demo_sheet.jpg")


if __name__ == "__main__":
    main()
