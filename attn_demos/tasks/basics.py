"""The seed tutorial, step by step: one query, two keys, two values, through both cores."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from attn_demos import settings
from attn_demos.core import numpy_attention, torch_attention
from attn_demos.core.validation import ShapeError
from attn_demos.errors import BadInputError

SEED_QUERY = [[1, 0, 1]]
SEED_KEY = [[1, 0, 0], [0, 1, 0]]
SEED_VALUE = [[1, 2], [3, 4]]


@dataclass
class BasicsResult:
    """Every step of softmax(q·kᵀ/√d_k)·v, from the torch core and from the numpy core."""

    query: np.ndarray  # (Tq, d_k)
    key: np.ndarray  # (Tk, d_k)
    value: np.ndarray  # (Tk, d_v)
    scores: np.ndarray  # (Tq, Tk) from torch
    weights: np.ndarray  # (Tq, Tk) from torch
    output: np.ndarray  # (Tq, d_v) from torch
    numpy_scores: np.ndarray  # (Tq, Tk)
    numpy_weights: np.ndarray  # (Tq, Tk)
    numpy_output: np.ndarray  # (Tq, d_v)

    @property
    def max_abs_diff(self) -> float:
        """Largest |torch − numpy| over scores, weights and output."""
        pairs = [(self.scores, self.numpy_scores), (self.weights, self.numpy_weights), (self.output, self.numpy_output)]
        return float(max(np.abs(a - b).max() for a, b in pairs))

    def to_dict(self) -> dict:
        return {
            "query": self.query.tolist(),
            "key": self.key.tolist(),
            "value": self.value.tolist(),
            "d_k": int(self.query.shape[-1]),
            "scores": self.scores.tolist(),
            "weights": self.weights.tolist(),
            "output": self.output.tolist(),
            "torch_vs_numpy_max_abs_diff": self.max_abs_diff,
        }

    def every_number(self) -> dict:
        """to_dict() (the torch core's steps) and the numpy core's steps beside them: a download's content."""
        return {
            **self.to_dict(),
            "numpy_scores": self.numpy_scores.tolist(),
            "numpy_weights": self.numpy_weights.tolist(),
            "numpy_output": self.numpy_output.tolist(),
        }


def parse_matrix(text: str | list, name: str) -> np.ndarray:
    """A JSON matrix such as "[[1, 0, 1]]" (or a list) -> float64 (rows, cols); one-line errors.
    Its size is checked against the settings' limits before any work that grows with it: the
    text's length before parsing, the rows, columns and cells before converting."""
    if isinstance(text, str) and len(text) > settings.current().max_characters:
        raise BadInputError(f"{name}: {len(text):,} characters; this app reads at most {settings.limit('max_characters')}")
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except (json.JSONDecodeError, RecursionError):
        raise BadInputError(f"{name}: not valid JSON; write a matrix like [[1, 0, 1]]") from None
    if isinstance(data, list) and data and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data):
        data = [data]  # a single row
    if not isinstance(data, list) or not data or not all(isinstance(row, list) and row for row in data):
        raise BadInputError(f"{name}: expected a non-empty list of rows, like [[1, 0, 1]]")
    _check_size(name, len(data), max(len(row) for row in data))
    if len({len(row) for row in data}) != 1:
        raise BadInputError(f"{name}: every row needs the same number of columns")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for row in data for x in row):
        raise BadInputError(f"{name}: every entry must be a number")
    matrix = np.asarray(data, dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise BadInputError(f"{name}: NaN and infinity are not allowed")
    return matrix


def _check_size(name: str, rows: int, columns: int) -> None:
    """Refuse a matrix beyond the settings' rows, columns or cells, in one line naming the limit."""
    limits = settings.current()
    for count, most, what, setting in (
        (rows, limits.max_matrix_rows, "rows", "max_matrix_rows"),
        (columns, limits.max_matrix_columns, "columns", "max_matrix_columns"),
        (rows * columns, limits.max_matrix_cells, "cells", "max_matrix_cells"),
    ):
        if count > most:
            raise BadInputError(f"{name}: {count:,} {what}; this app takes at most {settings.limit(setting)}")


def run_basics(query=SEED_QUERY, key=SEED_KEY, value=SEED_VALUE) -> BasicsResult:
    """Compute the tutorial's steps with both cores. Inputs are JSON strings or nested lists."""
    q, k, v = parse_matrix(query, "query"), parse_matrix(key, "key"), parse_matrix(value, "value")
    try:
        np_scores = numpy_attention.attention_scores(q, k)  # (Tq, Tk)
        np_output, np_weights = numpy_attention.attention(q, k, v)  # (Tq, d_v), (Tq, Tk)
        tq, tk, tv = (torch.from_numpy(m) for m in (q, k, v))
        t_scores = torch_attention.attention_scores(tq, tk)  # (Tq, Tk)
        t_output, t_weights = torch_attention.attention(tq, tk, tv)  # (Tq, d_v), (Tq, Tk)
    except ShapeError as error:
        raise BadInputError(str(error)) from None
    if not (np.isfinite(np_scores).all() and np.isfinite(np_output).all()):
        raise BadInputError("the numbers are too large: q·kᵀ or weights·v overflows; use smaller values")
    return BasicsResult(
        q, k, v, t_scores.numpy(), t_weights.numpy(), t_output.numpy(), np_scores, np_weights, np_output
    )
