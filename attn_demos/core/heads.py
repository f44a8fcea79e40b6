"""Per-head transformations that modern decoders apply before attention: grouped-query key/value
sharing, per-head RMS normalisation, and logit soft-capping."""

from __future__ import annotations

import torch


def repeat_kv_heads(x: torch.Tensor, num_query_heads: int) -> torch.Tensor:
    """Grouped-query attention: (B, H_kv, T, d) -> (B, H, T, d), query head h reading kv head h // (H / H_kv)."""
    kv_heads = x.shape[1]
    if num_query_heads % kv_heads:
        raise ValueError(f"{num_query_heads} query heads cannot share {kv_heads} key/value heads evenly")
    if kv_heads == num_query_heads:
        return x  # one key/value head per query head: nothing to share
    return x.repeat_interleave(num_query_heads // kv_heads, dim=1)  # (B, H, T, d)


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, compute_dtype: torch.dtype | None = None, offset: float = 0.0
) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) · (offset + weight) over the last axis; x (..., d), weight (d,).

    compute_dtype: the dtype of the normalisation itself (None: x's); the scaled result returns to x's dtype
    before the weight multiplies it.
    """
    work = x if compute_dtype is None else x.to(compute_dtype)
    normed = work * torch.rsqrt(work.pow(2).mean(dim=-1, keepdim=True) + eps)  # (..., d)
    return (offset + weight) * normed.to(x.dtype)


def soft_cap(scores: torch.Tensor, cap: float) -> torch.Tensor:
    """cap · tanh(scores / cap): logits squashed smoothly into (−cap, cap)."""
    return torch.tanh(scores / cap) * cap
