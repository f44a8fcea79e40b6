"""T5's relative position buckets (Raffel et al. 2020), from the definition; torch only.

Relative position r = key_position - query_position. Half of the buckets (per direction, when
bidirectional) hold exact small distances; the rest cover distances up to max_distance on a log
scale, and every larger distance shares the last bucket.
"""

from __future__ import annotations

import math

import torch


def relative_position_buckets(
    query_length: int, key_length: int, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """(Tq, Tk) integer bucket of every (query, key) pair."""
    query_pos = torch.arange(query_length)[:, None]  # (Tq, 1)
    key_pos = torch.arange(key_length)[None, :]  # (1, Tk)
    relative = key_pos - query_pos  # (Tq, Tk)
    buckets = torch.zeros_like(relative)  # (Tq, Tk)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative > 0).long() * num_buckets  # keys to the right get the upper half
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)  # only keys to the left count; the right is masked
    max_exact = num_buckets // 2
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    far = max_exact + (log_ratio * (num_buckets - max_exact)).long()  # (Tq, Tk)
    far = far.clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, far)  # (Tq, Tk)


def relative_position_bias(bucket_table: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
    """Look up each bucket's learned bias per head: table (num_buckets, H), buckets (Tq, Tk) -> (1, H, Tq, Tk)."""
    return bucket_table[buckets].permute(2, 0, 1)[None]
