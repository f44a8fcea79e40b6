"""Basics tab: the tutorial's steps as tables, the weights as a heatmap, torch beside numpy."""

from __future__ import annotations

import numpy as np

from attn_demos.render.heatmap import heatmap_image
from attn_demos.tasks.basics import run_basics

OUTPUTS = ("status", "steps", "heatmap", "numbers")


def run(query: str, key: str, value: str) -> dict:
    result = run_basics(query, key, value)
    d_k = result.query.shape[-1]
    steps = "\n\n".join(
        [
            f"**1. Scores** q·kᵀ / √{d_k}\n\n" + _side_by_side(result.scores, result.numpy_scores),
            "**2. Weights** softmax(scores), each row sums to 1\n\n" + _side_by_side(result.weights, result.numpy_weights),
            "**3. Output** weights · v\n\n" + _side_by_side(result.output, result.numpy_output),
        ]
    )
    queries = [f"q{i}" for i in range(result.weights.shape[0])]
    keys = [f"k{j}" for j in range(result.weights.shape[1])]
    mark = "✓ agree" if result.max_abs_diff < 1e-12 else "✗ disagree"
    return {
        "status": f"torch and numpy {mark}: max |Δ| {result.max_abs_diff:.1e}",
        "steps": steps,
        "heatmap": heatmap_image(result.weights, queries, keys, "attention weights"),
        "numbers": result.to_dict(),
    }


def _side_by_side(torch_values: np.ndarray, numpy_values: np.ndarray) -> str:
    """A Markdown table: one row per query, torch and numpy columns."""
    header = "| row | torch | numpy |\n|---|---|---|"
    rows = [
        f"| {i} | {_fmt(a)} | {_fmt(b)} |" for i, (a, b) in enumerate(zip(torch_values, numpy_values))
    ]
    return "\n".join([header, *rows])


def _fmt(row: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.6f}" for x in row) + "]"
