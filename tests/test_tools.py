"""tools/ship_decoder.py averages exports weight by weight and with --out leaves the package alone;
tools/soup.py groups exports by run and step, averages them and grows a soup greedily."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_ship_decoder_refuses_one_export_twice(tmp_path: Path) -> None:
    files = [tmp_path / "a" / "dec_100.safetensors", tmp_path / "b" / "dec_100.safetensors"]
    files[0].parent.mkdir()
    files[1].parent.mkdir()
    _export(files[0], 100, 0)
    files[1].write_bytes(files[0].read_bytes())  # a copy under another name
    before = _digest(PACKAGE_WEIGHTS)
    done = subprocess.run([sys.executable, str(SHIP), *map(str, files), "--out", str(tmp_path / "avg.safetensors")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and "same export" in done.stderr
    assert not (tmp_path / "avg.safetensors").exists() and _digest(PACKAGE_WEIGHTS) == before


def test_ship_decoder_averages_two_runs_exports_of_one_step(tmp_path: Path) -> None:
    files = [tmp_path / f"run{i}_dec_100.safetensors" for i in range(2)]  # two runs from one decoder
    decoders = [_export(f, 100, i) for i, f in enumerate(files)]
    out = tmp_path / "avg.safetensors"
    done = subprocess.run([sys.executable, str(SHIP), *map(str, files), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    tensors, meta = load_file(out)
    assert meta["averaged"] == "2 exports of several runs, steps 100-100"
    name = next(iter(tensors))
    mean = (decoders[0].state_dict()[name].double() + decoders[1].state_dict()[name].double()) / 2
    torch.testing.assert_close(tensors[name].double(), mean, atol=2e-3, rtol=2e-3)


def test_ship_decoder_counts_an_average_as_its_exports(tmp_path: Path) -> None:
    """A soup grown with a new export is the mean of all its exports, not a two-way mean."""
    files = [tmp_path / f"dec_{s}.safetensors" for s in (100, 200, 300, 400)]
    decoders = [_export(f, s, seed) for f, s, seed in zip(files, (100, 200, 300, 400), (1, 2, 3, 4), strict=True)]
    soup, grown = tmp_path / "soup.safetensors", tmp_path / "grown.safetensors"
    for args, out in (([*files[:3]], soup), ([soup, files[3]], grown)):
        done = subprocess.run([sys.executable, str(SHIP), *map(str, args), "--out", str(out)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
    tensors, meta = load_file(grown)
    assert meta["averaged"] == "4 exports, steps 100-400" and meta["step"] == "400"
    states = [d.state_dict() for d in decoders]
    for name, t in tensors.items():
        mean = torch.stack([st[name].double() for st in states]).mean(0)
        torch.testing.assert_close(t.double(), mean, atol=2e-3, rtol=2e-3)  # two fp16 roundings
    soup_state = Decoder.from_file(soup).state_dict()
    off_4 = sum((t.double() - torch.stack([st[n].double() for st in states]).mean(0)).abs().sum() for n, t in tensors.items())
    off_2 = sum((t.double() - (soup_state[n].double() + states[3][n].double()) / 2).abs().sum() for n, t in tensors.items())
    assert off_4 < 0.1 * off_2, (off_4, off_2)  # the 4-way mean (fp16 rounding off), not the 2-way one


def test_averaged_metadata_keeps_counts_steps_and_runs() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from ship_decoder import averaged_meta, exports_in

    def dec(**meta: str) -> Decoder:
        d = Decoder()
        d.meta = meta
        return d

    soup = dec(step="62333", averaged="24 exports, steps 54435-62333")
    several = dec(step="500", averaged="3 exports of several runs, steps 100-500")
    assert [exports_in(d) for d in (soup, several, dec(step="7"), dec(step="7", averaged="junk"))] == [24, 3, 1, 1]
    assert averaged_meta([soup, dec(step="62433"), dec(step="62533")]) == "26 exports, steps 54435-62533"
    assert averaged_meta([several, dec(step="600")]) == "4 exports of several runs, steps 100-600"
    assert averaged_meta([dec(step="100"), dec(step="100")]) == "2 exports of several runs, steps 100-100"


def test_ship_decoder_out_may_not_be_the_shipped_file(tmp_path: Path) -> None:
    f = tmp_path / "dec.safetensors"
    _export(f, 100, 0)
    before = _digest(PACKAGE_WEIGHTS)
    done = subprocess.run([sys.executable, str(SHIP), str(f), "--out", str(PACKAGE_WEIGHTS / "decoder.safetensors")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and "leave --out out" in done.stderr
    assert _digest(PACKAGE_WEIGHTS) == before


def _soup_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("soup", ROOT / "tools" / "soup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_soup_groups_consecutive_exports_of_each_run(tmp_path: Path) -> None:
    soup = _soup_module()
    files = []
    for run, steps in (("a", (300, 100, 200, 400, 500)), ("b", (100, 200))):
        (tmp_path / run).mkdir()
        for i, step in enumerate(steps):
            f = tmp_path / run / f"x{i}.safetensors"  # names out of step order on purpose
            _export(f, step, i)
            files.append(f)
    exports = {f: Decoder.from_file(f) for f in files[::-1]}
    got = [[(f.parent.name, int(exports[f].meta["step"])) for f in g] for g in soup.groups(exports, 2)]
    assert got == [[("a", 100), ("a", 200)], [("a", 300), ("a", 400)], [("a", 500)], [("b", 100), ("b", 200)]]

    decoders = [Decoder.from_file(f) for f in files[:3]]
    avg = soup.average(decoders).state_dict()
    for name, t in avg.items():
        mean = torch.stack([d.state_dict()[name].double() for d in decoders]).mean(0)
        torch.testing.assert_close(t.double(), mean, atol=1e-6, rtol=1e-6)

    # what the soup scores is what a shipped file holds (fp16), not the fp32 in-memory mean
    saved = tmp_path / "avg.safetensors"
    soup.average(decoders).save(saved)
    shipped = Decoder.from_file(saved).state_dict()
    assert not all(torch.equal(avg[k], shipped[k]) for k in shipped)
    rounded = soup.as_shipped(soup.average(decoders)).state_dict()
    assert all(torch.equal(rounded[k], shipped[k]) for k in shipped)


def test_soup_greedy_keeps_only_ingredients_that_lower_the_objective() -> None:
    """A toy objective: the soup's files are numbers and its score is how far their mean is from 5."""
    soup = _soup_module()

    def evaluate(files: list[Path]) -> tuple[float, float, float]:
        mean = sum(float(f.name) for f in files) / len(files)
        return abs(mean - 5.0), 0.0, 0.0

    ingredients = [(evaluate([Path(n)]), [Path(n)]) for n in ("9", "4", "7", "1", "5.5")]
    tries: list[tuple[str, bool]] = []
    best, files = soup.greedy(ingredients, evaluate, report=lambda g, s, kept: tries.append((g[0].name, kept)))
    # starts from 5.5 (0.5 off), then tries 4 (mean 4.75: kept), 7 (5.5: dropped), 9 (6.17: dropped), 1 (3.5: dropped)
    assert [f.name for f in files] == ["5.5", "4"] and best[0] == pytest.approx(0.25)
    assert tries == [("4", True), ("7", False), ("9", False), ("1", False)]

    # grown from a given, scored soup (4 off) instead, trying every ingredient: 5.5 (mean 7.83: kept),
    # 4 (6.875: kept), 7 (6.9: dropped), 9 (7.3: dropped), 1 (5.7: kept)
    start = [Path("9"), Path("9")]
    best, files = soup.greedy(ingredients, evaluate, start=(evaluate(start), start))
    assert [f.name for f in files] == ["9", "9", "5.5", "4", "1"] and best[0] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{a}", "--group", "0"], "--group must be at least 1"),
        (["{a}", "--start", "{tmp}/nope.txt"], "--start: no such file"),
        (["{a}", "{tmp}/gone.safetensors"], "1 missing exports"),
        (["{a}", "--start", "{list}"], "no exports left to add"),
    ],
)
def test_soup_refuses_bad_arguments_before_scoring_anything(tmp_path: Path, args: list[str], says: str) -> None:
    a = tmp_path / "a.safetensors"
    _export(a, 100, 0)
    (tmp_path / "start.txt").write_text(f"{a}\n")
    fill = {"a": str(a), "tmp": str(tmp_path), "list": str(tmp_path / "start.txt")}
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "soup.py"), *(x.format(**fill) for x in args)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "selection pairs" not in done.stdout  # refused before the (slow) scoring starts


needs_data = pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "train" / "content").is_dir(), reason="needs ../shared/data")


def _shipped_and_random(folder: Path) -> tuple[Path, Path]:
    """A copy of the shipped decoder and a random one at a later step (an ingredient of its own with --group 1)."""
    folder.mkdir()
    shipped = folder / "shipped.safetensors"
    shipped.write_bytes((PACKAGE_WEIGHTS / "decoder.safetensors").read_bytes())
    other = folder / "random.safetensors"
    _export(other, 10**9, 0)
    return shipped, other


def test_soup_sizes_parse_and_score_as_ratios_to_the_shipped_decoder() -> None:
    soup = _soup_module()
    assert soup.parse_sizes("256") == [(256, 256)]
    assert soup.parse_sizes("256, 512,1024:512,256") == [(256, 256), (512, 512), (1024, 512)]
    for bad, says in (("256,big", "'big' is not a size"), ("8", "at least 16"), ("1024:0", "at least 16"), ("", "'' is not")):
        with pytest.raises(ValueError, match=says):
            soup.parse_sizes(bad)
    # one size: the score as it is; several: the worst of the objective's ratios, then each ratio
    assert soup.relative([(3.0, 1.0, 0.5)], [(6.0, 2.0, 1.0)]) == (3.0, 1.0, 0.5)
    got = soup.relative([(3.0, 1.0, 0.5), (4.5, 1.0, 1.0)], [(6.0, 2.0, 1.0), (3.0, 1.0, 0.5)])
    assert got == pytest.approx((1.5, 0.5, 1.5))


def test_soup_refuses_a_bad_size_before_scoring_anything(tmp_path: Path) -> None:
    a = tmp_path / "a.safetensors"
    _export(a, 100, 0)
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "soup.py"), str(a), "--size", "256,1024:8"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "'1024:8': sides must be at least 16 px" in done.stderr, done.stderr
    assert "selection pairs" not in done.stdout


@needs_data
def test_soup_at_two_sizes_scores_the_shipped_decoder_1(tmp_path: Path) -> None:
    """Real pairs at 32 and 48:32 px: the shipped decoder's own file, as an ingredient, scores a ratio of 1."""
    shipped, other = _shipped_and_random(tmp_path / "run")
    out = tmp_path / "soup.txt"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "soup.py"), str(shipped), str(other), "--group", "1",
                           "--pairs", "2", "--size", "32,48:32", "--list", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 selection pairs at 32, 48:32 px" in done.stdout
    assert "1.0000 (32: 1.0000, 48:32: 1.0000)" in done.stdout, done.stdout  # each size's ratio is printed
    assert out.read_text().split() == [str(shipped)]  # a random decoder never joins


@needs_data
@pytest.mark.parametrize("as_list", [True, False])
def test_soup_grows_a_start_list_only_with_groups_that_beat_it(tmp_path: Path, as_list: bool) -> None:
    """--start: the listed exports (or the averaged decoder given) are the soup to beat (no
    ingredient of their own); a random decoder does not join it, so the list comes back unchanged."""
    shipped, other = _shipped_and_random(tmp_path / "run")
    (tmp_path / "start.txt").write_text(f"{shipped}\n")
    start = tmp_path / "start.txt" if as_list else shipped
    out = tmp_path / "soup.txt"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "soup.py"), str(shipped), str(other), "--group", "1",
                           "--pairs", "2", "--size", "32", "--start", str(start), "--list", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ref = next(x for x in done.stdout.splitlines() if x.startswith("shipped (step")).split(": ")[1].split()[0]
    sys.path.insert(0, str(ROOT / "tools"))
    from ship_decoder import exports_in

    n = exports_in(Decoder.from_file(shipped))  # the shipped soup counts as its exports (1 if it is no average)
    assert f"soup starts with --start's {n} exports: {ref}" in done.stdout, done.stdout  # and scores as shipped
    assert done.stdout.count(" dropped") == 1 and " kept" not in done.stdout  # one ingredient: the random one
    assert out.read_text().split() == [str(shipped)]
