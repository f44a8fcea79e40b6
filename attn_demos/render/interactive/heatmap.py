"""An attention matrix drawn on a canvas in the browser: hover a cell for its value, click a row
to select that query token, hide special tokens, zoom and scroll (readable at 1,000 tokens).

At first the cells fill the view's width (columns up to CELL_WIDTH_MAX px wide, rows tall enough
for their labels where that stays readable); a label that does not fit its room is cut with "…",
and labels are skipped only when the cells are narrower than a line of text. The colour scale
leaves special tokens' rows and columns out ([CLS] / [SEP] sinks would flatten every other cell;
the legend says so, a checkbox puts them back); cells a mask hides (a causal model's later tokens)
are hatched, not drawn as 0."""

from __future__ import annotations

import numpy as np

from attn_demos.render.interactive.embed import check_labels, fixed_point, labels_and_flags, view_html
from attn_demos.render.interactive.scale import ColourScale, legend_html

DECIMALS = 4  # values are sent rounded to 4 places (error ≤ 5e-5)
SHOWN_DECIMALS = 3  # the tooltip shows 3
ANNOTATE_UP_TO = 10  # cells carry their number when both axes have at most this many tokens
MASKED_NOTE = "masked: the query cannot attend to this key (a later token), so its weight is not a choice"
SCALE_NOTE = "colour scale without special tokens' rows and columns; brighter cells clipped to the top colour"


def fitted_scale(matrix: np.ndarray, query_special: list[int], key_special: list[int]) -> tuple[ColourScale, bool]:
    """The default scale of a (Tq, Tk) matrix: min(0, smallest) … largest finite value of the cells
    whose row and column are not special tokens (all cells when that leaves none); and whether
    special tokens were left out."""
    rows = np.flatnonzero(~np.asarray(query_special, dtype=bool))  # (R,)
    cols = np.flatnonzero(~np.asarray(key_special, dtype=bool))  # (C,)
    left_out = len(rows) < matrix.shape[0] or len(cols) < matrix.shape[1]
    inner = matrix[np.ix_(rows, cols)] if len(rows) and len(cols) else matrix  # (R, C)
    finite = inner[np.isfinite(inner)]
    if not finite.size:
        finite, left_out = matrix[np.isfinite(matrix)], False
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    vmax = float(finite.max()) if finite.size else 1.0
    return ColourScale(vmin, vmax if vmax > vmin else vmin + 1.0), left_out and len(rows) > 0 and len(cols) > 0


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
    visible_keys=None,
    group: str | None = None,
) -> str:
    """matrix (Tq, Tk) -> an interactive heatmap (HTML fragment for gr.HTML).

    chosen_query: the row shown selected at first (e.g. the chosen output token); marked_rows:
    rows flagged with a marker (e.g. generated tokens). A click on a row selects it and emits
    {"view": "heatmap", "query": i, "token": label} (see the package docstring). "Hide special
    tokens" removes their rows and columns in the browser and does NOT renormalise the remaining
    weights (the view says so); the colour scale is refitted to the cells still shown.
    scale: default fitted_scale (special tokens left out, stated under the legend), refitted in
    the browser to the cells shown; a given scale stays as given. decimals: places the values are
    sent with (the tooltip shows SHOWN_DECIMALS; 6 lets a test compare to 1e-6). visible_keys
    (Tq,): row i may attend to keys 0 … visible_keys[i] − 1 only (a causal mask); the other cells
    are drawn hatched and named "masked". group: the tab's selection group (selection.py).
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
    if visible_keys is not None:
        visible_keys = [int(v) for v in np.asarray(visible_keys).reshape(-1)]
        if len(visible_keys) != tq or not all(0 <= v <= tk for v in visible_keys):
            raise ValueError(f"visible_keys needs {tq} counts between 0 and {tk}")
    fixed, left_out = scale is not None, False
    if scale is None:
        scale, left_out = fitted_scale(matrix, query_special, key_special)
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
        "annotate": max(tq, tk) <= ANNOTATE_UP_TO,
        "visible": visible_keys,
        "fixed": fixed,
        **scale.payload(),
    }
    note = f'<div class="attn-note attn-scale-note">{SCALE_NOTE}</div>' if left_out else ""
    if visible_keys is not None and min(visible_keys) < tk:
        note += f'<div class="attn-note"><span class="attn-masked-swatch"></span> {MASKED_NOTE}</div>'
    return view_html("heatmap", payload, title, legend_html(scale, value_label) + note, target_id, group)
