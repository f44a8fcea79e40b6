"""An attention matrix drawn on a canvas in the browser: hover a cell for its value, click a row
to select that query token, hide special tokens, zoom and scroll (readable at 1,000 tokens)."""

from __future__ import annotations

import numpy as np

from attn_demos.render.interactive.embed import check_labels, fixed_point, labels_and_flags, view_html
from attn_demos.render.interactive.scale import ColourScale, legend_html

DECIMALS = 4  # values are sent rounded to 4 places (error ≤ 5e-5)
SHOWN_DECIMALS = 3  # the tooltip shows 3
ANNOTATE_UP_TO = 10  # cells carry their number when both axes have at most this many tokens
FIT_PIXELS = 420  # the default zoom fits the longer axis into about this many pixels
CELL_MIN, CELL_MAX = 2, 48  # default cell size limits in pixels


def default_cell(tq: int, tk: int) -> int:
    """Pixels per cell at the first draw: the longer axis in about FIT_PIXELS, within limits."""
    return int(min(CELL_MAX, max(CELL_MIN, FIT_PIXELS // max(tq, tk))))


def heatmap_html(
    matrix,
    query_labels: list[str],
    key_labels: list[str],
    title: str = "",
    chosen_query: int | None = None,
    marked_rows: list[int] | None = None,
    target_id: str | None = None,
    scale: ColourScale | None = None,
    value_label: str = "attention weight",
    decimals: int = DECIMALS,
) -> str:
    """matrix (Tq, Tk) -> an interactive heatmap (HTML fragment for gr.HTML).

    chosen_query: the row shown selected at first (e.g. the chosen output token); marked_rows:
    rows flagged with a marker (e.g. generated tokens). A click on a row selects it and emits
    {"view": "heatmap", "query": i, "token": label} (see the package docstring). "Hide special
    tokens" removes their rows and columns in the browser and does NOT renormalise the remaining
    weights (the view says so); the colour scale is refitted to the cells still shown.
    scale: default 0 (or the minimum, if negative) to the maximum, viridis. decimals: places the
    values are sent with (the tooltip shows SHOWN_DECIMALS; 6 lets a test compare to 1e-6).
    """
    if not 0 <= decimals <= 9:
        raise ValueError(f"decimals must be 0..9, got {decimals}")
    matrix = np.asarray(matrix, dtype=np.float64)  # (Tq, Tk)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"heatmap needs a non-empty (queries, keys) matrix, got shape {matrix.shape}")
    tq, tk = matrix.shape
    queries, query_special = labels_and_flags(check_labels("query labels", query_labels, tq))
    keys, key_special = labels_and_flags(check_labels("key labels", key_labels, tk))
    marked = sorted({int(i) for i in (marked_rows or [])})
    for row in marked + ([] if chosen_query is None else [int(chosen_query)]):
        if not 0 <= row < tq:
            raise ValueError(f"row {row} is outside the {tq} query rows")
    if scale is None:
        finite = matrix[np.isfinite(matrix)]
        vmin = min(0.0, float(finite.min())) if finite.size else 0.0
        vmax = float(finite.max()) if finite.size else 1.0
        scale = ColourScale(vmin, vmax if vmax > vmin else vmin + 1.0)
    payload = {
        "q": queries,
        "k": keys,
        "qs": query_special,
        "ks": key_special,
        "decimals": decimals,
        "shown": SHOWN_DECIMALS,
        "m": fixed_point(matrix, decimals),  # row-major (Tq·Tk,)
        "chosen": None if chosen_query is None else int(chosen_query),
        "marked": marked,
        "cell": default_cell(tq, tk),
        "annotate": max(tq, tk) <= ANNOTATE_UP_TO,
        **scale.payload(),
    }
    return view_html("heatmap", payload, title, legend_html(scale, value_label), target_id)
