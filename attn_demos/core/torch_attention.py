"""Scaled dot-product attention in torch: `attention`, line for line the tutorial's formula and the
numpy core; `fast_attention`, the same numbers with less memory traffic (what the verification
runs); plus multi-head helpers."""

from __future__ import annotations

import math

import torch

from attn_demos.core.heads import soft_cap
from attn_demos.core.validation import check_qkv


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (output, weights) = (softmax(q·kᵀ/√d_k)·v, the softmax) over the last two axes.

    q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v).
    mask: boolean, broadcastable to (..., Tq, Tk); True means "may attend".
    bias: additive, broadcastable to (..., Tq, Tk) (e.g. T5's relative position bias).
    scale: multiplies q·kᵀ; None means 1/√d_k (T5 passes 1.0).
    softcap: scaled scores become softcap·tanh(scores/softcap) before bias and mask (Gemma 2).
    A query row with no key allowed gets all-zero weights, not NaN.
    """
    check_qkv(tuple(q.shape), tuple(k.shape), tuple(v.shape))
    d_k = q.shape[-1]
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., Tq, Tk)
    if softcap is not None:
        scores = soft_cap(scores, softcap)  # (..., Tq, Tk)
    if bias is not None:
        scores = scores + bias  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (..., Tq, Tk)
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk)
    if mask is not None:
        weights = weights.nan_to_num(0.0)  # (..., Tq, Tk); a row with no key allowed: 0/0 becomes 0
    output = weights @ v  # (..., Tq, d_v)
    return output, weights


def fast_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor | None,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    softcap: float | None = None,
    softmax_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """`attention` with less memory traffic, for the verification of whole models: q is scaled
    before the product (one pass over Tq·d, not Tq·Tk), the mask is filled in place, and the scores
    are freed before ·v, so one Tq×Tk temporary lives at a time besides the weights.

    Same arguments as `attention`, plus v None (skip the output) and softmax_dtype (run the softmax
    in this dtype, as some libraries do, and return weights in q's). Scaling q first rounds q·scale
    before the product: the scores differ from `attention`'s by float rounding only.
    """
    check_qkv(tuple(q.shape), tuple(k.shape), None if v is None else tuple(v.shape))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)  # (..., Tq, Tk)
    if softcap is not None:
        scores = soft_cap(scores, softcap)  # (..., Tq, Tk)
    if bias is not None:
        scores = scores + bias  # (..., Tq, Tk)
    if mask is not None and torch.broadcast_shapes(scores.shape, mask.shape) == scores.shape:
        scores.masked_fill_(~mask, float("-inf"))  # (..., Tq, Tk); in place: scores is this call's own
    elif mask is not None:  # a mask with more leading axes than q and k
        scores = scores.masked_fill(~mask, float("-inf"))  # (..., Tq, Tk)
    weights = torch.softmax(scores, dim=-1, dtype=softmax_dtype).to(q.dtype)  # (..., Tq, Tk)
    del scores  # one Tq×Tk temporary at a time besides the weights
    if mask is not None:
        weights.nan_to_num_(0.0)  # rows with no allowed key
    output = None if v is None else weights @ v  # (..., Tq, d_v)
    return output, weights


def attention_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """The raw scores q·kᵀ·scale before softmax: (..., Tq, Tk). Used to show the steps."""
    check_qkv(tuple(q.shape), tuple(k.shape), None)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return q @ k.transpose(-2, -1) * scale  # (..., Tq, Tk)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, H·d) -> (B, H, T, d)."""
    batch, length, width = x.shape
    if width % num_heads:
        raise ValueError(f"width {width} is not divisible by {num_heads} heads")
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d) -> (B, T, H·d)."""
    batch, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * d)


def multi_head_attention(
    query_states: torch.Tensor,
    key_value_states: torch.Tensor,
    w_q: torch.nn.Linear,
    w_k: torch.nn.Linear,
    w_v: torch.nn.Linear,
    num_heads: int,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project, split into heads and attend. Self-attention passes the same states twice.

    query_states: (B, Tq, D), key_value_states: (B, Tk, D); returns output (B, Tq, H·d_v) and
    weights (B, H, Tq, Tk). The projections are any callables (B, T, D) -> (B, T, H·d).
    """
    q = split_heads(w_q(query_states), num_heads)  # (B, H, Tq, d)
    k = split_heads(w_k(key_value_states), num_heads)  # (B, H, Tk, d)
    v = split_heads(w_v(key_value_states), num_heads)  # (B, H, Tk, d)
    output, weights = attention(q, k, v, mask=mask, bias=bias, scale=scale)  # (B, H, Tq, d), (B, H, Tq, Tk)
    return merge_heads(output), weights  # (B, Tq, H·d), (B, H, Tq, Tk)
