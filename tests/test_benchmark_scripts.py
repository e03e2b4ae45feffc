"""The benchmark scripts whose numbers go into benchmarks/README.md run, and measure what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _rows(stdout: str) -> list[list[str]]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| N ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_throughput_times_eager_and_the_api_on_the_same_picture() -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cpu", "--dtype", "fp32",
           "--sizes", "32", "--batch", "2", "--modes", "eager", "api", "--warmup", "1", "--repeats", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "dtype: float32" in done.stdout
    rows = _rows(done.stdout)
    assert [(r[2], r[3]) for r in rows] == [
        ("eager", "style per batch"), ("eager", "style reused"), ("api", "style per batch"), ("api", "style reused"),
    ]  # fmt: skip
    for n, batch, _, _, seconds, per_s, _, diff in rows:
        assert (n, batch) == ("32", "2")
        assert float(seconds) > 0 and float(per_s.replace(",", "")) == pytest.approx(2 / float(seconds), rel=0.05)
        assert float(diff) == 0.0  # transfer() runs the very module the eager rows time


def test_throughput_refuses_cuda_graphs_without_cuda() -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cpu", "--modes", "cudagraphs"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "needs a CUDA device" in done.stderr
