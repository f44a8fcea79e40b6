"""The process's CPU memory allocator: keep freed blocks for reuse instead of returning them at once.

Attention on a CPU allocates and frees blocks of megabytes per layer (scores, weights: B·H·T·T
floats). glibc's malloc serves blocks above its mmap threshold (from 128 KiB, raised to the largest
block freed, at most 32 MiB) with fresh pages from the kernel and hands them back on free, and
returns free memory at its heap's top beyond its trim threshold (twice the mmap threshold): the next
block is faulted in again a page (4 KiB) at a time. At 384 tokens, one layer's check in a loop
took 10.5 ms (4,600 faults) instead of 4.5 ms with the mmap threshold held at 128 KiB; in a fresh
process glibc raises it after the first free and the loop alone takes 4.6 ms, so what the defaults
cost depends on the process's history (2-core CPU). Raising both thresholds lets freed blocks be
reused; in a whole pass the trim threshold does most of it (the heap's free top passes the 64 MiB
that glibc's own trim threshold reaches). This changes the whole process, so the entry points that
own their process call it (`attn-demos` commands, the app, the benchmark); a program that imports
attn_demos may call it too. Set ATTN_DEMOS_REUSE_FREED_MEMORY=0 to keep the C library's defaults.
Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

MMAP_THRESHOLD = 32 * 2**20  # bytes: blocks up to this come from the heap (64-bit glibc's cap before 2.35; any since)
TRIM_THRESHOLD = 256 * 2**20  # bytes: free memory at the heap's top kept for reuse before it goes back to the OS
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
SWITCH = "ATTN_DEMOS_REUSE_FREED_MEMORY"  # "0": leave the allocator as it is

log = logging.getLogger(__name__)


def reuse_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (both: setting either stops glibc adjusting the other).
    True if they were set; False where it does nothing (not glibc, or switched off)."""
    if os.environ.get(SWITCH, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not done:
        log.warning("glibc refused the allocator's thresholds; freed memory goes back to the OS as before")
    return done
