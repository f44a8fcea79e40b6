"""A patch-attention map drawn over its photo in the browser (overlay.js): hover a patch for its
value, click one to choose it as the query (emits {"view": "overlay", "patch": i, "row": r,
"col": c}, i row-major over the grid, see the package docstring).

It is drawn as render/overlay.patch_overlay draws its PNG: each patch covers its share of the
photo and is tinted with its colour at opacity ALPHA × score / max, so a patch with no attention
shows the photo unchanged. overlay_legend_html draws the scale that way too.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image

from attn_demos.render.interactive.embed import fixed_point, view_html
from attn_demos.render.interactive.scale import TICKS, ColourScale

ALPHA = 0.5  # opacity of the most attended patch's colour (as patch_overlay's default)
DECIMALS = 5  # values travel in 1e-5 (patch weights of a 196-patch grid are ~0.005)
SHOWN_DECIMALS = 4
PHOTO_SIDE = 448  # the photo travels at most this many pixels per side (JPEG)
JPEG_QUALITY = 85
CHECKER = "repeating-conic-gradient(#b8b8b8 0% 25%, #e8e8e8 0% 50%) 0 0 / 8px 8px"  # "the photo" in a legend


def photo_data_url(image: Image.Image, side: int = PHOTO_SIDE) -> str:
    """The photo as a JPEG data URL, downscaled to at most `side` pixels per side."""
    picture = image.convert("RGB")
    picture.thumbnail((side, side), Image.Resampling.BICUBIC)  # in place; keeps the aspect ratio
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def overlay_html(
    image: Image.Image,
    patch_scores,
    title: str = "",
    query: int | None = None,
    cmap: str = "inferno",
    label: str = "attention",
    target_id: str | None = None,
    alpha: float = ALPHA,
) -> str:
    """patch_scores (rows, cols) over `image` -> an interactive overlay (HTML fragment for gr.HTML).

    query: the patch (row-major index) outlined as the one whose attention is shown, None when the
    query is not a patch ([CLS]). The legend under it is overlay_legend_html's."""
    scores = np.asarray(patch_scores, dtype=np.float64)  # (rows, cols)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"patch scores must be a (rows, cols) grid, got shape {scores.shape}")
    rows, cols = scores.shape
    if query is not None and not 0 <= query < rows * cols:
        raise ValueError(f"query patch {query} is outside the {rows}×{cols} grid")
    clean = np.clip(np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)  # (rows, cols)
    top = float(clean.max())
    scale = ColourScale(0.0, top if top > 0 else 1.0, cmap)
    payload = {
        "src": photo_data_url(image),
        "rows": rows,
        "cols": cols,
        "decimals": DECIMALS,
        "shown": SHOWN_DECIMALS,
        "v": fixed_point(scores, DECIMALS),  # (rows·cols,) row-major
        "alpha": float(alpha),
        "query": None if query is None else int(query),
        "label": label,
        **scale.payload(),
    }
    return view_html("overlay", payload, title, overlay_legend_html(scale, alpha, label), target_id)


def overlay_legend_html(scale: ColourScale, alpha: float = ALPHA, label: str = "attention", decimals: int = 3) -> str:
    """The scale of an overlay as it is drawn: each colour at opacity alpha × fraction of the scale,
    over a checkerboard that stands for the photo (0 leaves the photo unchanged)."""
    stops = scale.stops()
    parts = []
    for i, (red, green, blue) in enumerate(stops):
        fraction = i / (len(stops) - 1)
        parts.append(f"rgba({red}, {green}, {blue}, {alpha * fraction:.3f}) {100 * fraction:.1f}%")
    gradient = "linear-gradient(to right, " + ", ".join(parts) + ")"
    ticks = []
    for i in range(TICKS):
        fraction = i / (TICKS - 1)
        value = scale.vmin + fraction * (scale.vmax - scale.vmin)
        place = f"position: absolute; left: {100 * fraction:g}%; transform: translateX(-{100 * fraction:g}%);"
        ticks.append(f'<span class="attn-tick" data-frac="{fraction:g}" style="{place}">{value:.{decimals}f}</span>')
    caption = f"0 leaves the photo unchanged; the largest value is its colour at {alpha:.0%} opacity"
    return (
        f'<div class="attn-legend attn-overlay-legend" data-decimals="{decimals}" style="display: inline-block;'
        f' width: 260px; max-width: 100%; font-size: 12px; margin: 4px 16px 4px 0; vertical-align: top;">'
        f'<div class="attn-legend-label">{html.escape(label)}</div>'
        f'<div class="attn-legend-bar" style="height: 12px; border-radius: 2px; background: {gradient}, {CHECKER};"></div>'
        f'<div class="attn-legend-ticks" style="position: relative; height: 1.4em;">{"".join(ticks)}</div>'
        f'<div class="attn-note" style="font-size: 11px; opacity: 0.8;">{html.escape(caption)}</div></div>'
    )
