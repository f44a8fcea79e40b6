"""Ways to summarise a stack of attention maps: head fusion and rollout (Abnar & Zuidema, 2020)."""

from __future__ import annotations

import numpy as np

FUSIONS = ("mean", "max", "min")


def fuse_heads(weights: np.ndarray, how: str = "mean") -> np.ndarray:
    """(..., H, Tq, Tk) -> (..., Tq, Tk) by mean, max or min over the heads axis."""
    if how not in FUSIONS:
        raise ValueError(f"unknown head fusion {how!r}; choose one of {', '.join(FUSIONS)}")
    return getattr(np, how)(weights, axis=-3)


def with_residual(layer_maps: np.ndarray) -> np.ndarray:
    """Add the identity (the residual path) to each (T, T) map and renormalise every row to sum 1.

    layer_maps: (L, T, T) -> (L, T, T). A row that was all zeros (a padded query) becomes the
    identity row: the token only keeps itself.
    """
    length = layer_maps.shape[-1]
    augmented = layer_maps + np.eye(length)  # (L, T, T)
    return augmented / augmented.sum(axis=-1, keepdims=True)


def rollout(weights: np.ndarray, fusion: str = "mean", residual: bool = True) -> np.ndarray:
    """Attention rollout: R = Â_L · … · Â_1, with Â_l the head-fused map of layer l (+ residual).

    weights: (L, H, T, T) self-attention of one example -> (T, T); row i says how much each input
    token contributes to token i at the top of the stack.
    """
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"rollout needs self-attention of shape (L, H, T, T), got {weights.shape}")
    layer_maps = fuse_heads(weights, fusion)  # (L, T, T)
    if residual:
        layer_maps = with_residual(layer_maps)  # (L, T, T)
    joint = layer_maps[0]  # (T, T)
    for layer_map in layer_maps[1:]:
        joint = layer_map @ joint  # (T, T)
    return joint


def rollout_rows(weights: np.ndarray, rows, fusion: str = "mean", residual: bool = True) -> np.ndarray:
    """Rows of rollout(weights, fusion, residual): `rows` an index -> (T,), a list -> (R, T);
    e_rowᵀ · Â_L · … · Â_1 as vectors times each layer's map from the top down (T² per row and
    layer instead of T³ a layer)."""
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"rollout needs self-attention of shape (L, H, T, T), got {weights.shape}")
    layer_maps = fuse_heads(weights, fusion)  # (L, T, T)
    if residual:
        layer_maps = with_residual(layer_maps)  # (L, T, T)
    vectors = layer_maps[-1][rows]  # (T,) or (R, T)
    for layer_map in layer_maps[-2::-1]:
        vectors = vectors @ layer_map  # (T,) or (R, T)
    return vectors
