"""Timing helpers: one call's seconds, interleaved pairs, and switching a model's attention."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(candidate, baseline, repeats: int, warmup: int = 1) -> dict:
    """Time two callables in adjacent pairs (A B, then B A, …). The ratio is the median of the
    pairs' ratios: a pair shares the machine's state, so a burst of load elsewhere cancels out."""
    for _ in range(warmup):
        candidate()
        baseline()
    times = {"candidate": [], "baseline": []}
    for repeat in range(repeats):
        order = [("candidate", candidate), ("baseline", baseline)]
        for side, fn in order if repeat % 2 == 0 else order[::-1]:
            times[side].append(seconds(fn))
    pair_ratios = [c / b for c, b in zip(times["candidate"], times["baseline"])]
    return {
        "ratio": statistics.median(pair_ratios),
        "candidate_s": statistics.median(times["candidate"]),
        "baseline_s": statistics.median(times["baseline"]),
        "pair_ratio_min": min(pair_ratios),
        "pair_ratio_max": max(pair_ratios),
        "repeats": repeats,
    }


class attention_implementation:
    """Switch a model to "eager" or "sdpa" for the duration of a with-block."""

    def __init__(self, model, name: str):
        self.model, self.name = model, name

    def __enter__(self):
        self.before = self.model.config._attn_implementation
        self.model.set_attn_implementation(self.name)
        return self.model

    def __exit__(self, *exc):
        self.model.set_attn_implementation(self.before)


def as_eager(model, fn):
    def run():
        with attention_implementation(model, "eager"), torch.no_grad():
            return fn()

    return run


def as_sdpa(model, fn):
    def run():
        with attention_implementation(model, "sdpa"), torch.no_grad():
            return fn()

    return run


@contextmanager
def torch_threads(count: int):
    """Run the block on `count` torch intra-op threads in the calling thread.

    torch.set_num_threads sets OpenMP's count for the calling thread only (threads already
    running keep theirs) and the count that threads started later begin with; the caller's count
    is put back on exit.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
