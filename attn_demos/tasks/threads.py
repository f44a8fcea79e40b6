"""Torch threads per request. Two requests at once on a 2-core machine, each with torch's default
of one intra-op thread per core, run four threads on two cores."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int):
    """Run the block on `count` torch intra-op threads in the calling thread.

    torch.set_num_threads sets OpenMP's thread count of the calling thread only (threads already
    running keep theirs) and the count that threads started later begin with; on exit the
    caller's count is put back, so a thread pool's threads do not drift.
    """
    if count < 1:
        raise ValueError(f"a request needs at least one thread, got {count}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
