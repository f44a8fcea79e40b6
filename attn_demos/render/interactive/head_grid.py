"""Every head of every layer as a small canvas thumbnail; the shown head is outlined and a click
on a cell selects it (emits {"view": "grid", "layer": l, "head": h}, see the package docstring)."""

from __future__ import annotations

import numpy as np

from attn_demos.render.heatmap import _shrink
from attn_demos.render.interactive.embed import check_labels, fixed_point, view_html
from attn_demos.render.interactive.scale import ColourScale, legend_html

THUMB_MAX = 32  # thumbnails are max-pooled to at most this many cells per side
DECIMALS = 2  # thumbnail values are fractions of their scale, sent in hundredths


def head_grid_html(
    weights,
    shown: tuple[int, int] | None = None,
    title: str = "",
    target_id: str | None = None,
    per_head_scale: bool = True,
    layer_labels: list[str] | None = None,
) -> str:
    """weights (L, H, Tq, Tk) -> a layer × head grid of thumbnails (HTML fragment for gr.HTML).

    Each thumbnail is max-pooled to THUMB_MAX per side (a sharp peak stays visible) and scaled to
    its own maximum (per_head_scale) or to the largest weight of all heads. shown: (layer, head)
    outlined at first.
    """
    weights = np.asarray(weights)  # (L, H, Tq, Tk), in its own dtype: only the thumbnails are made float64
    if weights.ndim != 4 or 0 in weights.shape:
        raise ValueError(f"head grid needs weights of shape (layers, heads, Tq, Tk), got {weights.shape}")
    layers, heads = weights.shape[:2]
    names = [str(i) for i in range(layers)] if layer_labels is None else [str(x) for x in layer_labels]
    check_labels("layer labels", names, layers)
    if shown is not None and not (0 <= shown[0] < layers and 0 <= shown[1] < heads):
        raise ValueError(f"shown head {tuple(shown)} is outside {layers} layers × {heads} heads")
    tiles = []
    for layer in range(layers):
        pooled = _shrink(weights[layer], THUMB_MAX)  # (H, rows, cols)
        if np.isnan(pooled).any():  # a NaN weight counts as 0: that layer is cleaned first (rare)
            pooled = _shrink(np.nan_to_num(weights[layer], nan=0.0), THUMB_MAX)
        tiles += list(pooled.astype(np.float64))  # (rows, cols) each
    # one scale: the largest weight of all heads, which is the largest of the max-pooled tiles
    overall = None if per_head_scale else float(np.fmax.reduce(np.stack(tiles), axis=None))  # NaN only if all are
    for index, tile in enumerate(tiles):
        top = float(tile.max()) if per_head_scale else overall
        tiles[index] = tile / top if top > 0 else tile
    rows, cols = tiles[0].shape
    note = "each head scaled to its own maximum" if per_head_scale else "one scale for all heads"
    scale = ColourScale(0.0, 1.0)
    payload = {
        "layers": names,
        "heads": heads,
        "rows": rows,
        "cols": cols,
        "decimals": DECIMALS,
        "t": fixed_point(np.stack(tiles), DECIMALS),  # (L·H·rows·cols,) layer-major
        "shown": None if shown is None else [int(shown[0]), int(shown[1])],
        **scale.payload(),
    }
    static = f'<div class="attn-note">{note}</div>' + legend_html(scale, "fraction of the scale", 2)
    return view_html("grid", payload, title, static, target_id)
