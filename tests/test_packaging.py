"""Packaging: single-sourced version, changelog, stripped notebooks, docs navigation, README links,
and (when ``STYLEKIT_WHEEL`` names a built wheel, as .ci/run does) the wheel's contents, its size
and an offline install into a fresh virtual environment where ``stylekit demo`` runs."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import stylekit

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "stylekit"
WHEEL = os.environ.get("STYLEKIT_WHEEL")
MAX_WHEEL_MB = 40

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]


def _pyproject() -> dict:
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_is_written_once():
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "stylekit.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+|\.dev\d+)?", stylekit.__version__)


def test_installed_metadata_has_the_same_version():
    import importlib.metadata as md

    try:
        installed = md.version("stylekit-nst")
    except md.PackageNotFoundError:
        pytest.skip("stylekit-nst is not installed (running from a source tree)")
    assert installed == stylekit.__version__


def test_changelog_describes_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{stylekit.__version__}]" in text


def test_package_data_covers_weights_and_examples():
    globs = _pyproject()["tool"]["setuptools"]["package-data"]["stylekit"]
    shipped = [p.relative_to(PKG).as_posix() for d in ("weights", "examples") for p in (PKG / d).iterdir() if p.is_file()]
    for f in shipped:
        assert any(fnmatch.fnmatch(f, g) for g in globs), f"{f} would be left out of the wheel"


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "train_your_own.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_stripped(path: Path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.get("metadata", {})


def test_docs_navigation_points_at_real_pages():
    text = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r"^\s+- [^:]+: (\S+\.md)\s*$", text, flags=re.M)
    assert "index.md" in pages and "api.md" in pages and "training.md" in pages
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), f"mkdocs.yml lists docs/{page}, which is missing"


def test_readme_links_and_ci_commands():
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[dev]" && stylekit demo -o demo.jpg' in readme
    assert "\npytest\n" in readme
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)", readme):
        assert (ROOT / target).exists(), f"README links to {target}, which is missing"
    for must in ("docs/cli.md", "docs/video.md", "docs/export.md", "notebooks/quickstart.ipynb", "CHANGELOG.md"):
        assert f"]({must})" in readme, f"README does not link {must}"


# ----------------------------------------------------------------------------- the built wheel

needs_wheel = pytest.mark.skipif(not WHEEL, reason="set STYLEKIT_WHEEL to a built wheel (.ci/run does)")


@needs_wheel
def test_wheel_contents_and_size():
    path = Path(WHEEL)  # type: ignore[arg-type]
    size_mb = path.stat().st_size / 1e6
    print(f"wheel {path.name}: {size_mb:.1f} MB")
    assert size_mb < MAX_WHEEL_MB
    assert f"-{stylekit.__version__}-" in path.name
    names = set(zipfile.ZipFile(path).namelist())
    sums = (PKG / "weights" / "SHA256SUMS").read_text().split()[1::2]
    expected = {"stylekit/py.typed", "stylekit/weights/SHA256SUMS", "stylekit/weights/NOTICE.md",
                *(f"stylekit/weights/{n.lstrip('*')}" for n in sums),
                *(f"stylekit/examples/{p.name}" for p in (PKG / "examples").iterdir())}  # fmt: skip
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "docs/"))]


def _site_packages_without_stylekit(farm: Path) -> Path:
    """Links to everything installed here except stylekit itself: the dependencies 'already present'."""
    farm.mkdir()
    skip = re.compile(r"^(stylekit|__editable__.*stylekit)", re.I)
    for sp in site.getsitepackages():
        for entry in Path(sp).iterdir():
            if not skip.match(entry.name) and not entry.name.endswith(".pth") and not (farm / entry.name).exists():
                (farm / entry.name).symlink_to(entry)
    return farm


@needs_wheel
@pytest.mark.slow
def test_wheel_installs_offline_and_runs(tmp_path: Path):
    venv = tmp_path / "venv"
    # no pip of its own: pip, like every dependency, comes from this environment through deps.pth
    # (with --no-index it can only add the wheel, never replace what it finds there)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(purelib) / "deps.pth").write_text(str(_site_packages_without_stylekit(tmp_path / "deps")) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index, no extra find-links from the machine's pip.conf
    wheel_dir = str(Path(WHEEL).parent)  # type: ignore[arg-type]
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-index", "--find-links", wheel_dir, "stylekit-nst"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr

    def run(*args: str) -> str:
        r = subprocess.run([str(py), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    where = run("-c", "import stylekit; print(stylekit.__file__, stylekit.__version__)").split()
    assert where[0].startswith(str(venv)) and where[1] == stylekit.__version__  # the wheel, not this checkout
    info = json.loads(run("-m", "stylekit", "info", "--json"))
    assert all(w["ok"] for w in info["weights"] if w["present"])
    cli = venv / "bin" / "stylekit"
    if any(w["name"] == "decoder.safetensors" and w["present"] for w in info["weights"]):
        r = subprocess.run([str(cli), "demo", "-o", "demo.jpg"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert r.returncode == 0, r.stderr
        from PIL import Image

        assert Image.open(tmp_path / "demo.jpg").size == (902, 600)
    else:
        pytest.skip("the wheel has no decoder yet: stylekit demo not run")
