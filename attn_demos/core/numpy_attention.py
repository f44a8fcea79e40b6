"""Scaled dot-product attention in numpy: softmax(q·kᵀ/√d_k + bias)·v, written to be read by eye."""

from __future__ import annotations

import numpy as np

from attn_demos.core.validation import check_qkv


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax over `axis` (n entries; shapes below for axis=-1); a row whose
    every entry is -inf becomes all zeros."""
    peak = np.max(scores, axis=axis, keepdims=True)  # (..., 1)
    peak = np.where(np.isfinite(peak), peak, 0.0)  # (..., 1); a row of -inf: no shift
    exps = np.exp(scores - peak)  # (..., n)
    total = np.sum(exps, axis=axis, keepdims=True)  # (..., 1)
    return np.divide(exps, total, out=np.zeros_like(exps), where=total > 0)  # (..., n)


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (output, weights) of attention over the last two axes.

    q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v).
    mask: boolean, broadcastable to (..., Tq, Tk); True means "may attend".
    bias: additive, broadcastable to (..., Tq, Tk) (e.g. T5's relative position bias).
    scale: multiplies q·kᵀ; None means 1/√d_k (T5 passes 1.0).
    """
    check_qkv(q.shape, k.shape, v.shape)
    d_k = q.shape[-1]
    scale = 1.0 / np.sqrt(d_k) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale  # (..., Tq, Tk)
    if bias is not None:
        scores = scores + bias  # (..., Tq, Tk)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)  # (..., Tq, Tk)
    weights = softmax(scores, axis=-1)  # (..., Tq, Tk)
    output = weights @ v  # (..., Tq, d_v)
    return output, weights


def attention_scores(q: np.ndarray, k: np.ndarray, scale: float | None = None) -> np.ndarray:
    """The raw scores q·kᵀ·scale before softmax: (..., Tq, Tk). Used to show the steps."""
    check_qkv(q.shape, k.shape, None)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return q @ np.swapaxes(k, -1, -2) * scale  # (..., Tq, Tk)


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, T, H·d) -> (B, H, T, d)."""
    batch, length, width = x.shape
    if width % num_heads:
        raise ValueError(f"width {width} is not divisible by {num_heads} heads")
    return x.reshape(batch, length, num_heads, width // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, T, d) -> (B, T, H·d)."""
    batch, heads, length, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, length, heads * d)
