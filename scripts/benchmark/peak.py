"""Peak extra resident memory of one call, in this process (Linux, glibc).

torch's CPU tensors come from malloc, invisible to tracemalloc. During a measurement glibc is
told to map every block from 64 KiB on by itself (and to unmap it on free), and free heap memory
is handed back first, so the resident set before the call is what is in use; the kernel's
high-water mark (VmHWM, reset through /proc/self/clear_refs) then gives the call's peak.
Afterwards glibc's default thresholds are put back (128 KiB, no longer adjusted by glibc).
"""

from __future__ import annotations

import ctypes
import gc
import platform
from pathlib import Path

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MEASURING_MMAP_THRESHOLD = 64 * 2**10  # bytes
GLIBC_MMAP_THRESHOLD = 128 * 2**10  # glibc's default
GLIBC_TRIM_THRESHOLD = 128 * 2**10


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_extra_mb(fn) -> tuple[float, float]:
    """(peak, retained): MB the resident set rose above where it stood when `fn()` started, at
    its highest, and once fn's result is dropped (memory the callee keeps between calls)."""
    if platform.libc_ver()[0] != "glibc":
        return float("nan"), float("nan")
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, MEASURING_MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, MEASURING_MMAP_THRESHOLD)
    try:
        gc.collect()
        libc.malloc_trim(0)
        before = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from the resident set
        fn()  # its result is dropped here
        peak = _status_kib("VmHWM")
        gc.collect()
        libc.malloc_trim(0)
        retained = _status_kib("VmRSS")
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)
    return (peak - before) / 1024, (retained - before) / 1024
