"""stylekit.device.tune_malloc: large freed blocks are kept and reused, not faulted in again."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest
import torch

PROBE = r"""
import ctypes, json, sys
import numpy as np
from stylekit.device import tune_malloc

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert tune_malloc() is True
a = np.ones(64 << 20, np.uint8)  # 64 MiB: above glibc's largest mmap threshold (32 MiB)
mapped = libc.mallinfo2().hblkhd  # bytes in blocks that malloc mapped from the kernel on their own
del a
kept = libc.mallinfo2().fordblks  # free bytes malloc keeps for reuse
print(json.dumps({"mapped": mapped, "kept": kept}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_tuned_malloc_keeps_large_blocks_for_reuse() -> None:
    plain, tuned = _probe("plain"), _probe("tuned")
    big = 64 << 20
    # as glibc comes: the 64 MiB block is a mapping of its own, unmapped (and faulted in anew) every time
    assert plain["mapped"] >= big and plain["kept"] < big, plain
    # tuned: it comes from the heap and stays there when freed, ready for the next one
    assert tuned["mapped"] < big and tuned["kept"] >= big, tuned


def test_tune_malloc_is_not_called_on_import() -> None:
    code = "import stylekit, ctypes; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "ok"


@pytest.fixture
def cpu_flags(monkeypatch: pytest.MonkeyPatch):
    """Pretend the CPU has exactly the given /proc/cpuinfo flags."""
    from stylekit import device

    def use(*flags: str) -> None:
        monkeypatch.setattr(device, "_cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(device, "_warned_emulated", set())

    return use


@pytest.mark.parametrize("asked", ["bf16", "bfloat16", torch.bfloat16])
def test_bf16_on_a_cpu_without_bf16_hardware_warns_and_still_gives_bf16(cpu_flags, asked) -> None:
    from stylekit import PerformanceWarning
    from stylekit.device import resolve_dtype

    cpu_flags("avx2", "fma", "f16c")  # an AVX2-only CPU (e.g. AMD EPYC before Zen 4)
    with pytest.warns(PerformanceWarning, match=r"dtype='bf16' on this CPU \(no AMX or AVX-512-BF16\).*dtype='auto' \(fp32 here\)"):
        assert resolve_dtype(torch.device("cpu"), asked) == torch.bfloat16  # no silent switch to fp32
    assert resolve_dtype(torch.device("cpu"), "auto") == torch.float32


def test_the_warning_comes_once_per_process(cpu_flags) -> None:
    import warnings

    from stylekit import PerformanceWarning
    from stylekit.device import resolve_dtype

    cpu_flags("avx2")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            resolve_dtype(torch.device("cpu"), "bf16")
        resolve_dtype(torch.device("cpu"), "fp16")
    assert [w.category for w in seen] == [PerformanceWarning] * 2, [str(w.message) for w in seen]
    assert "'bf16'" in str(seen[0].message) and "'fp16'" in str(seen[1].message)


def test_fp16_without_fp16_hardware_warns_naming_auto_bf16_where_that_is_fast(cpu_flags) -> None:
    from stylekit import PerformanceWarning
    from stylekit.device import resolve_dtype

    cpu_flags("avx512f", "amx_bf16", "amx_tile")  # Sapphire-Rapids-like without the fp16 flags
    with pytest.warns(PerformanceWarning, match=r"dtype='fp16'.*AMX-FP16.*dtype='auto' \(bf16 here\)"):
        assert resolve_dtype(torch.device("cpu"), "fp16") == torch.float16


@pytest.mark.parametrize(("flags", "asked"), [
    (("avx512_bf16",), "bf16"), (("amx_bf16",), "bf16"), (("avx512_fp16",), "fp16"), (("avx2",), "fp32"), (("avx2",), "auto"),
])  # fmt: skip
def test_no_warning_where_the_hardware_has_the_dtype(cpu_flags, flags, asked) -> None:
    import warnings

    from stylekit.device import resolve_dtype

    cpu_flags(*flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_dtype(torch.device("cpu"), asked)


def test_the_warning_reaches_the_public_api(cpu_flags, tiny_model) -> None:
    import stylekit

    cpu_flags("avx2")
    with pytest.warns(stylekit.PerformanceWarning, match="emulated"):
        stx = stylekit.StyleTransfer("cpu", "bf16", model=tiny_model)
    assert stx.dtype == torch.bfloat16


def test_cli_prints_the_warning_as_one_line(tmp_path) -> None:
    """The command prints `stylekit: warning: ...` once, without a source line (here through a
    child process whose CPU flags are patched to an AVX2-only CPU)."""
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 90, 40)).save(tmp_path / "a.png")
    code = ("import sys, stylekit.device as d; d._cpu_flags = lambda: frozenset({'avx2'}); "
            "from stylekit.cli import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    args = [str(tmp_path / "a.png"), str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--dtype", "bf16"]
    r = subprocess.run([sys.executable, "-c", code, "transfer", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "PerformanceWarning" in ln or "warning" in ln]
    assert lines == [lines[0]] and lines[0].startswith("stylekit: warning: dtype='bf16' on this CPU"), r.stderr
