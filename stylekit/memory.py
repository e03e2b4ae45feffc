"""How much memory a pass of the model may take: the untiled memory rule.

One pass of the model without tiles needs about :data:`UNTILED_BYTES_PER_PIXEL` bytes per
pixel; :func:`untiled_limit` turns the memory :func:`available_memory` reports (RAM and cgroup
limits on the CPU, free device memory on CUDA) into the most pixels such a pass may take, capped
at :data:`MAX_UNTILED_PIXELS`. :mod:`stylekit.pipeline` checks every pass of a call against it
before anything runs, and :func:`check_style_memory` every style image.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from .errors import ImageError

__all__ = ["MAX_UNTILED_PIXELS", "UNTILED_BYTES_PER_PIXEL", "MEMORY_FRACTION", "available_memory", "untiled_limit",
           "check_style_memory", "too_large_error", "TILE_ADVICE"]

MAX_UNTILED_PIXELS: int | None = 16_000_000
"""Most pixels one pass of the model may take without tiles (all the rows it stylises together,
padded to multiples of 8): 16 MP, about 12 GB at :data:`UNTILED_BYTES_PER_PIXEL`. None: no fixed
cap (the check against the available memory still applies). Read at call time: may be changed."""

UNTILED_BYTES_PER_PIXEL = 768
"""Estimated working memory of an untiled pass, in bytes per pixel: the peak is at the decoder's
first full-resolution convolution, whose reflection-padded 128-channel input and 64-channel
output are alive together, (128 + 64) x 4 bytes in float32 (the encoder's first block, with its
64-channel relu1_1 / relu1_2 maps, needs less). Measured on an Intel Xeon with AMX: 660 to 780 B/px
at 0.5 to 1 MP, in fp32 and in bf16 alike (the CPU kernels keep float32 buffers), so it is used
for every dtype; on an AMD EPYC without AMX, 420 B/px at 12 MP in bf16 (docs/reliability.md)."""

MEMORY_FRACTION = 0.8
"""An untiled pass may take at most this fraction of the memory available on its device."""


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_available(proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup", sys_cgroup: str | os.PathLike[str] = "/sys/fs/cgroup") -> int | None:
    """What this process's cgroup (v2 or v1 memory controller, and its ancestors) still allows:
    the limit minus the usage plus the reclaimable page cache; None where no limit is set.
    (The two paths are parameters for the tests.)"""
    try:
        with open(proc_cgroup) as f:
            lines = [ln.rstrip("\n").split(":", 2) for ln in f]
    except OSError:
        return None
    found: list[int] = []
    for _, controllers, rel in (ln for ln in lines if len(ln) == 3):
        if controllers == "":  # v2: memory.max, memory.current, memory.stat inactive_file
            root, files = Path(sys_cgroup), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1
            root, files = Path(sys_cgroup) / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        d = root / rel.lstrip("/")
        while True:
            try:
                limit = (d / files[0]).read_text().strip()
                if limit != "max" and int(limit) < 1 << 60:
                    usage = int((d / files[1]).read_text())
                    stat = dict(ln.split() for ln in (d / "memory.stat").read_text().splitlines() if ln.count(" ") == 1)
                    found.append(max(0, int(limit) - usage + int(stat.get(files[2], 0))))
            except (OSError, ValueError):
                pass
            if d == root or root not in d.parents:
                break
            d = d.parent
    return min(found) if found else None


def available_memory(device: torch.device) -> int | None:
    """Bytes that ``device`` can still give, or None where unknown.

    CUDA: the free device memory plus what PyTorch's caching allocator holds unused. CPU and MPS
    (which shares the RAM): ``MemAvailable`` from ``/proc/meminfo`` (elsewhere
    ``os.sysconf``'s available pages), lowered to what a cgroup memory limit still allows.
    """
    if device.type == "cuda":
        try:
            free = torch.cuda.mem_get_info(device)[0]
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        except Exception:  # no driver, a device that vanished: no estimate
            return None
    if device.type not in ("cpu", "mps"):
        return None
    found = [n for n in (_meminfo_available(), _cgroup_available()) if n is not None]
    return min(found) if found else None


def untiled_limit(device: torch.device) -> tuple[int | None, str]:
    """The most pixels one untiled pass may take on ``device`` (None: no limit), and the rule that sets it.

    The rule: ``pixels x UNTILED_BYTES_PER_PIXEL`` (768 B/px) must stay within
    ``MEMORY_FRACTION`` (80 %) of :func:`available_memory`, and ``pixels`` within
    :data:`MAX_UNTILED_PIXELS` (16 MP). Pixels are counted after padding to multiples of 8, for
    all the rows of a batch that run together.

    Example:
        >>> n, why = untiled_limit(torch.device("cpu"))
        >>> n <= MAX_UNTILED_PIXELS
        True
    """
    limit, why = None, "no limit"
    if MAX_UNTILED_PIXELS is not None:
        limit = int(MAX_UNTILED_PIXELS)
        why = f"the {limit / 1e6:g} MP limit of untiled passes (stylekit.memory.MAX_UNTILED_PIXELS)"
    avail = available_memory(device)
    if avail is not None:
        n = int(MEMORY_FRACTION * avail) // UNTILED_BYTES_PER_PIXEL
        if limit is None or n < limit:
            limit = n
            why = f"{MEMORY_FRACTION:.0%} of the {avail / 1e9:.3g} GB of memory available on {device.type} ({n:,} px)"
    return limit, why


def too_large_error(name: str, what: str, size: str, pixels: int, limit: int, why: str, advice: str) -> ImageError:
    return ImageError(
        f"{name} is too large to {what} without tiles: {size} = {pixels / 1e6:.3g} MP would need about "
        f"{pixels * UNTILED_BYTES_PER_PIXEL / 1e9:.3g} GB of working memory ({UNTILED_BYTES_PER_PIXEL} bytes per "
        f"pixel), over {why}; {advice}"
    )


TILE_ADVICE = ("pass tile='auto' (memory bounded by one 1024 px tile), or max_size= to scale it down "
               "(stylekit transfer: --tile auto, --max-size N)")


def check_style_memory(x: Tensor, device: torch.device, name: str = "style") -> None:
    """Refuse style images (B, 3, h, w) that would not fit :func:`untiled_limit` when encoded
    (styles are always encoded whole, even when the content is tiled): an ImageError."""
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    limit, why = untiled_limit(device)
    if limit is not None and pixels > limit:
        advice = "pass a smaller size= (--size N; a style's statistics change little above 1024 px)"
        size = f"{x.shape[-1]}x{x.shape[-2]} px" + (f" x {x.shape[0]} pictures" if x.shape[0] > 1 else "")
        raise too_large_error(name, "encode", size, pixels, limit, why, advice)
