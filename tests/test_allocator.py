"""attn_demos/allocator.py: freed blocks of megabytes are reused instead of faulted in again.

Each case runs in a fresh Python (the setting is per process) and checks one layer of 12 heads at
384 tokens through the torch path (verify.check_site, weights built a few heads at a time), as the
CPU verification of DistilBERT at 384 tokens does, counting the minor page faults per check. Each
check allocates scores and weights of 1.7 MiB a chunk, 430 pages of 4 KiB each. Both processes
start with glibc's mmap threshold fixed at its starting value, 128 KiB (MALLOC_MMAP_THRESHOLD_):
every freed chunk goes back to the kernel and comes back as fresh pages. glibc's own defaults
move that threshold with the process's history, so they fault anywhere between that and almost
nothing (measured: 7 to 3,300 faults a check); reuse_freed_memory() must bring it to almost none.
The trim threshold is checked on its own: two blocks just under the mmap threshold, freed onto the
heap's top, together more than 32 MiB (what swapped constants would make it) must stay resident.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from attn_demos.allocator import SWITCH, reuse_freed_memory

CHECKS = 20
STARTING_THRESHOLD = "131072"  # bytes: glibc's mmap threshold before it adjusts it
FAULTS_RETURNED = 150  # a check's faults with freed blocks returned are at least this (a third of one chunk's pages)
FAULTS_REUSED = 100  # ... and with freed blocks reused at most this (under a quarter of one chunk's pages)
HEAP_THRESHOLD = str(32 * 2**20)  # bytes: a fixed mmap threshold that puts the trim program's blocks on the heap
BLOCK_MB = 20  # MiB: each of the trim program's two blocks (under the mmap threshold; two exceed 32 MiB)
RETURNED_MB = 36  # MiB: freed blocks gone back to the OS shrink the resident set by at least this (of 40)
KEPT_MB = 4  # ... and kept for reuse by at most this

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")

PROGRAM = f"""
import resource, sys, torch
from attn_demos.adapters import verify
from attn_demos.adapters.recompute import AttentionTerms
from attn_demos.allocator import reuse_freed_memory
from attn_demos.core.torch_attention import attention, merge_heads
print(reuse_freed_memory() if sys.argv[1] == "reuse" else "-")
q, k, v = (torch.randn(1, 12, 384, 64) for _ in range(3))  # (B, H, T, d)
context = merge_heads(attention(q, k, v)[0])  # (B, T, H·d)
terms = AttentionTerms(q=q, k=k, v=v, scale=None)
with torch.no_grad():
    for _ in range(3):
        verify.check_site(None, terms, context, None, None)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({CHECKS}):
        verify.check_site(None, terms, context, None, None)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / {CHECKS})
"""


TRIM_PROGRAM = f"""
import ctypes, os, sys
from attn_demos.allocator import reuse_freed_memory
print(reuse_freed_memory() if sys.argv[1] == "reuse" else "-")
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
blocks = [libc.malloc({BLOCK_MB} * 2**20) for _ in range(2)]
for block in blocks:
    ctypes.memset(block, 1, {BLOCK_MB} * 2**20)
before = resident()
for block in reversed(blocks):  # the last first: each joins the heap's free top
    libc.free(block)
print((before - resident()) / 2**20)
"""


def run_fresh(program: str, mode: str, switch: str | None = None, threshold: str = STARTING_THRESHOLD):
    """`program` in a fresh Python under glibc's mmap threshold fixed at `threshold`: its two words."""
    env = {key: value for key, value in os.environ.items() if key != SWITCH and not key.startswith("MALLOC_")}
    env["MALLOC_MMAP_THRESHOLD_"] = threshold
    if switch is not None:
        env[SWITCH] = switch
    done = subprocess.run(
        [sys.executable, "-c", program, mode], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    answer, count = done.stdout.split()
    return answer, float(count)


def faults_per_check(mode: str, switch: str | None = None) -> tuple[str, float]:
    return run_fresh(PROGRAM, mode, switch)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    _, default = faults_per_check("default")
    answer, reused = faults_per_check("reuse")
    assert answer == "True"
    assert default >= FAULTS_RETURNED, f"freed blocks returned: {default:.0f} faults a check; the control shows nothing"
    assert reused <= FAULTS_REUSED, f"{reused:.0f} page faults a check with freed blocks reused (returned: {default:.0f})"


def test_free_memory_at_the_heaps_top_is_kept_up_to_the_trim_threshold():
    _, heap_default = run_fresh(TRIM_PROGRAM, "default", threshold=HEAP_THRESHOLD)
    answer, kept = run_fresh(TRIM_PROGRAM, "reuse")
    assert answer == "True"
    assert heap_default >= RETURNED_MB, f"glibc's own trim returned {heap_default:.1f} MiB: the control shows nothing"
    assert kept <= KEPT_MB, f"{kept:.1f} MiB of {2 * BLOCK_MB} freed went back to the OS with freed memory kept"


def test_the_switch_leaves_the_allocator_as_it_was():
    answer, count = faults_per_check("reuse", switch="0")
    assert answer == "False"
    assert count >= FAULTS_RETURNED


def test_the_cli_and_the_app_turn_it_on(monkeypatch):
    from attn_demos import allocator, cli
    from attn_demos.ui import app

    calls = []
    monkeypatch.setattr(allocator, "reuse_freed_memory", lambda: calls.append("set") or True)
    assert cli.main(["basics", "--json"]) == 0
    assert calls == ["set"]

    class Demo:
        def launch(self, **kwargs):
            calls.append("launched")

    app.launch(Demo())
    assert calls == ["set", "set", "launched"], "the app's server started before its allocator was set"


def test_elsewhere_than_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert reuse_freed_memory() is False
