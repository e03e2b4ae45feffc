"""stylekit.device.tune_malloc: large freed blocks are kept and reused, not faulted in again."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

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
