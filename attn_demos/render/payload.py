"""Keep what is sent to the browser small: a matrix as rounded numbers, sparse when it is large.

The rule (compact_matrix):
  * values are rounded to `decimals` places (4 by default: error ≤ 5e-5, finer than float16);
    NaN and ±inf become null;
  * if Tq × Tk ≤ max_cells, every cell is sent ("dense": a list of rows);
  * otherwise each row keeps only its k = max(1, max_cells // Tq) largest cells ("topk": per row,
    column indices in increasing order and their values); every other cell reads as 0.
For attention (rows sum to 1) the dropped cells are the row's smallest, and "row_mass" (the sum
each row kept, before rounding) says how much of the row the browser actually sees.
"""

from __future__ import annotations

import json

import numpy as np

MAX_CELLS = 65_536  # a 256 × 256 matrix is sent whole
DECIMALS = 4


def _rounded(values: np.ndarray, decimals: int) -> list:
    """(...) -> nested lists of floats rounded to `decimals`; non-finite -> None."""
    rounded = np.round(values.astype(np.float64), decimals)
    finite = np.isfinite(rounded)
    if finite.all():
        return rounded.tolist()
    cells = rounded.astype(object)
    cells[~finite] = None
    return cells.tolist()


def compact_matrix(matrix: np.ndarray, max_cells: int = MAX_CELLS, decimals: int = DECIMALS) -> dict:
    """(Tq, Tk) -> a small JSON-ready dict (see the module docstring for the rule)."""
    matrix = np.asarray(matrix)  # (Tq, Tk)
    if matrix.ndim != 2:
        raise ValueError(f"compact_matrix needs a (Tq, Tk) matrix, got shape {matrix.shape}")
    tq, tk = matrix.shape
    if tq * tk <= max_cells:
        return {"format": "dense", "shape": [tq, tk], "decimals": decimals, "values": _rounded(matrix, decimals)}

    k = max(1, min(tk, max_cells // max(tq, 1)))
    ranking = np.where(np.isfinite(matrix), matrix, -np.inf)  # (Tq, Tk) non-finite ranks last
    top = np.sort(np.argpartition(-ranking, k - 1, axis=1)[:, :k], axis=1)  # (Tq, k) kept columns
    kept = np.take_along_axis(matrix, top, axis=1)  # (Tq, k)
    row_mass = np.where(np.isfinite(kept), kept, 0.0).sum(axis=1)  # (Tq,)
    return {
        "format": "topk",
        "shape": [tq, tk],
        "decimals": decimals,
        "k": k,
        "indices": top.tolist(),
        "values": _rounded(kept, decimals),
        "row_mass": _rounded(row_mass, decimals),
    }


def expand_matrix(payload: dict) -> np.ndarray:
    """compact_matrix's dict -> (Tq, Tk) float64 array (dropped cells 0, null cells NaN)."""
    tq, tk = payload["shape"]
    if payload["format"] == "dense":
        return np.array(payload["values"], dtype=np.float64).reshape(tq, tk)
    matrix = np.zeros((tq, tk))  # (Tq, Tk)
    rows = np.repeat(np.arange(tq), payload["k"])  # (Tq·k,)
    matrix[rows, np.array(payload["indices"]).reshape(-1)] = np.array(payload["values"], dtype=np.float64).reshape(-1)
    return matrix


def payload_size(obj) -> int:
    """Bytes of obj as compact UTF-8 JSON (no spaces): about what goes over the wire."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))

