"""Shape checks shared by the numpy and torch cores, with one-line messages a person can act on."""

from __future__ import annotations


class ShapeError(ValueError):
    """q, k and v do not fit together."""


def check_qkv(q_shape: tuple, k_shape: tuple, v_shape: tuple | None) -> None:
    """Raise ShapeError unless q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v) fit."""
    shapes = {"query": q_shape, "key": k_shape}
    if v_shape is not None:
        shapes["value"] = v_shape
    for name, shape in shapes.items():
        if len(shape) < 2:
            raise ShapeError(f"{name} must be a matrix (rows × columns), got shape {tuple(shape)}")
        if 0 in shape:
            raise ShapeError(f"{name} is empty (shape {tuple(shape)})")
    if q_shape[-1] != k_shape[-1]:
        raise ShapeError(
            f"query and key need the same number of columns (d_k): query has {q_shape[-1]}, key has {k_shape[-1]}"
        )
    if v_shape is not None and k_shape[-2] != v_shape[-2]:
        raise ShapeError(
            f"key and value need the same number of rows (one value per key): key has {k_shape[-2]}, value has {v_shape[-2]}"
        )
