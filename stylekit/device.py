"""Device, precision and memory-format choice, made in one place."""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from .errors import ArgumentError, PerformanceWarning

__all__ = ["resolve_device", "resolve_dtype", "autocast", "cpu_has_fast_bf16", "cpu_has_fast_fp16",
           "is_channels_last", "memory_format_of", "tune_malloc"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; anything else must name an available device."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ArgumentError(f"device={device!r} is not a device name (try 'auto', 'cpu', 'cuda', 'mps')") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device={str(device)!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ArgumentError(f"device={str(device)!r}: MPS is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ArgumentError(f"device={str(device)!r} is not supported (use cpu, cuda or mps)")
    return dev


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True where the CPU does bf16 matrix maths in hardware (AMX or AVX-512-BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


def cpu_has_fast_fp16() -> bool:
    """True where the CPU does fp16 matrix maths in hardware (AMX-FP16 or AVX-512-FP16)."""
    return bool({"amx_fp16", "avx512_fp16"} & _cpu_flags())


def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None = "auto") -> torch.dtype:
    """The compute dtype: ``"auto"`` is bf16 on CUDA (fp16 if bf16 is missing) and on CPUs with
    fast bf16, fp32 elsewhere. Accepts "fp32"/"bf16"/"fp16" or a torch dtype.

    Asking for bf16 or fp16 on a CPU without hardware for it gives that dtype (the results are
    right) with a :class:`~stylekit.errors.PerformanceWarning`: there it is emulated, about 100x
    slower than fp32 (measured on an AVX2-only AMD EPYC: a 3x3 256-channel convolution at
    0.7 GFLOPS in bf16 against 76 in fp32).

    Example:
        >>> resolve_dtype(torch.device("cpu"), "fp32")
        torch.float32
    """
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}  # fmt: skip
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in names.values():
            raise ArgumentError(f"dtype={dtype} is not supported (use float32, bfloat16 or float16)")
        chosen = dtype
    elif dtype in names:
        chosen = names[dtype]
    else:
        raise ArgumentError(f"dtype={dtype!r} is not one of 'auto', {', '.join(map(repr, names))}")
    if device.type == "cpu":
        _warn_if_emulated(chosen)
    return chosen


_warned_emulated: set[torch.dtype] = set()  # once per dtype per process: one model is many calls
_HARDWARE = {torch.bfloat16: ("bf16", cpu_has_fast_bf16, "AMX or AVX-512-BF16"),
             torch.float16: ("fp16", cpu_has_fast_fp16, "AMX-FP16 or AVX-512-FP16")}  # fmt: skip


def _warn_if_emulated(dtype: torch.dtype) -> None:
    if dtype in _HARDWARE and dtype not in _warned_emulated and not _HARDWARE[dtype][1]():
        _warned_emulated.add(dtype)
        name, _, hardware = _HARDWARE[dtype]
        auto = "bf16" if cpu_has_fast_bf16() else "fp32"
        warnings.warn(
            f"dtype={name!r} on this CPU (no {hardware}) is emulated in software, about 100x slower "
            f"than fp32; use dtype='auto' ({auto} here) unless you need the rounding",
            PerformanceWarning, stacklevel=3,
        )


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is a 4-d tensor laid out channels-last (and not also plain contiguous,
    as maps with one channel or one pixel are).

    Example:
        >>> is_channels_last(torch.zeros(1, 3, 4, 4).contiguous(memory_format=torch.channels_last))
        True
        >>> is_channels_last(torch.zeros(1, 3, 4, 4))
        False
    """
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """The memory format a new map derived from ``x`` should get to keep ``x``'s layout.

    Example:
        >>> memory_format_of(torch.zeros(1, 3, 4, 4).contiguous(memory_format=torch.channels_last))
        torch.channels_last
    """
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or a no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def tune_malloc() -> bool:
    """Make the C library's malloc keep freed memory for reuse (Linux with glibc); returns
    whether it did.

    glibc gives every block over 32 MiB back to the kernel when it is freed, so each large
    activation is page-faulted in again on every call or training step: on the project's 2-core
    CPU that made a batch-8 192 px training step 1.4x and a 512 px transfer 1.6x slower than
    with tcmalloc. This turns off glibc's ``mmap`` for large blocks and raises its trim
    threshold (``mallopt(M_MMAP_MAX, 0)``, ``mallopt(M_TRIM_THRESHOLD, 2 GiB)``), which gets most
    of that back; the process then keeps up to 2 GiB of freed memory.

    It changes the allocator of the whole process, so ``import stylekit`` never calls it: the
    ``stylekit`` command does (unless ``STYLEKIT_MALLOC=default`` is set), and a script or
    notebook that stylises many pictures or trains may. Preloading tcmalloc or jemalloc
    (``LD_PRELOAD``) does the same and more; then this changes nothing that matters.

    Example:
        >>> from stylekit.device import tune_malloc
        >>> tune_malloc() in (True, False)
        True
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))
