"""attn_demos/allocator.py: freed blocks of megabytes are reused instead of faulted in again.

Each case runs in a fresh Python (the setting is per process) and checks one layer of 12 heads at
384 tokens through the torch path (verify.check_site, weights built a few heads at a time), as the
CPU verification of DistilBERT at 384 tokens does, counting the minor page faults per check. Each
check allocates scores and weights of 1.7 MiB a chunk, 430 pages of 4 KiB each. Both processes
start with glibc's mmap threshold fixed at its starting value, 128 KiB (MALLOC_MMAP_THRESHOLD_):
every freed chunk goes back to the kernel and comes back as fresh pages. glibc's own defaults
move that threshold with the process's history, so they fault anywhere between that and almost
nothing (measured: 7 to 3,300 faults a check); reuse_freed_memory() must bring it to almost none.
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


def faults_per_check(mode: str, switch: str | None = None) -> tuple[str, float]:
    env = {key: value for key, value in os.environ.items() if key != SWITCH and not key.startswith("MALLOC_")}
    env["MALLOC_MMAP_THRESHOLD_"] = STARTING_THRESHOLD
    if switch is not None:
        env[SWITCH] = switch
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    answer, count = done.stdout.split()
    return answer, float(count)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    _, default = faults_per_check("default")
    answer, reused = faults_per_check("reuse")
    assert answer == "True"
    assert default >= FAULTS_RETURNED, f"freed blocks returned: {default:.0f} faults a check; the control shows nothing"
    assert reused <= FAULTS_REUSED, f"{reused:.0f} page faults a check with freed blocks reused (returned: {default:.0f})"


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
