"""Attention matrices as pictures: one labelled heatmap, or a layer × head grid of thumbnails.

Figures are built with the object API on an Agg canvas (no pyplot state), so Gradio's worker
threads can draw at the same time.
"""

from __future__ import annotations

import math
import textwrap
import warnings

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

CMAP = "viridis"
MAX_TICK_LABELS = 60  # per axis; beyond this only every k-th token is labelled
ANNOTATE_UP_TO = 10  # write the value in each cell when both axes have at most this many tokens
THUMB_MAX = 64  # head-grid thumbnails larger than this are max-pooled down to it
POOLED_MAX = 1024  # a long input's heatmap is max-pooled to this many cells per side (14 inches at DPI)
DPI = 100


def _new_figure(width: float, height: float, layout: str | None = None) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _printable(label: str, limit: int = 24) -> str:
    """Control characters would break the layout: show them escaped; an empty token as ''; cut long ones."""
    if label == "":
        return "''"
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in label)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown_labels(labels: list[str]) -> list[tuple[int, str]]:
    """(position, printable label) for every token, or every k-th one beyond MAX_TICK_LABELS."""
    step = max(1, math.ceil(len(labels) / MAX_TICK_LABELS))
    return [(i, _printable(labels[i])) for i in range(0, len(labels), step)]


def _text_inches(text: str, fontsize: float) -> float:
    """A generous estimate of a label's width (wide characters counted as a full em)."""
    ems = sum(0.62 if ord(ch) < 0x2E80 else 1.0 for ch in text)
    return ems * fontsize / 72


def _figure_to_image(figure: Figure) -> Image.Image:
    """Draw once on the Agg canvas and take its pixels (no PNG encode/decode round trip)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Glyph .* missing from.*")  # emoji, some scripts
        figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())  # (height, width, 4) uint8
    return Image.fromarray(rgba[..., :3].copy())


def heatmap_figure(
    matrix: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    title: str = "",
    vmax: float | None = None,
) -> Figure:
    """A heatmap of matrix (Tq, Tk): rows = queries, columns = keys, tokens as tick labels.

    The colour scale runs from 0 (or the minimum, if negative) to vmax (default: the maximum).
    Up to MAX_TICK_LABELS tokens per axis are all labelled; longer axes label every k-th token.
    Small matrices (≤ ANNOTATE_UP_TO tokens per axis) also print each value in its cell.
    """
    matrix = np.asarray(matrix, dtype=np.float64)  # (Tq, Tk)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"heatmap needs a non-empty (queries, keys) matrix, got shape {matrix.shape}")
    tq, tk = matrix.shape
    if len(query_labels) != tq or len(key_labels) != tk:
        raise ValueError(f"{tq}×{tk} matrix but {len(query_labels)} query and {len(key_labels)} key labels")
    finite = matrix[np.isfinite(matrix)]
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    if vmax is None:
        vmax = float(finite.max()) if finite.size else 1.0
    if vmax <= vmin:
        vmax = vmin + 1.0

    longest = max(tq, tk)
    fontsize = 9 if longest <= 20 else 7 if longest <= 40 else 6
    cell = 0.45 if longest <= ANNOTATE_UP_TO else 0.3 if longest <= 20 else 0.17 if longest <= 60 else 0.1  # inches
    plot_w = min(14.0, max(2.0, cell * tk))  # inches
    plot_h = min(14.0, max(0.6, cell * tq))
    x_labels, y_labels = _shown_labels(key_labels), _shown_labels(query_labels)
    left = 0.45 + max(_text_inches(t, fontsize) for _, t in y_labels) + 0.1  # y axis name + labels
    bottom = 0.3 + max(_text_inches(t, fontsize) for _, t in x_labels) + 0.1
    right = 1.0  # colour bar and its numbers
    width = left + plot_w + right
    title_lines = textwrap.wrap(title, width=max(20, int(width * 72 / (10 * 0.6)))) if title else []
    top = 0.15 + 0.2 * len(title_lines)
    height = bottom + plot_h + top

    figure = _new_figure(width, height)
    axes = figure.add_axes((left / width, bottom / height, plot_w / width, plot_h / height))
    image = axes.imshow(matrix, cmap=CMAP, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    axes.set_xticks([i for i, _ in x_labels], [t for _, t in x_labels], fontsize=fontsize, rotation=90, parse_math=False)
    axes.set_yticks([i for i, _ in y_labels], [t for _, t in y_labels], fontsize=fontsize, parse_math=False)
    axes.set_xlabel("key (attended to)", fontsize=8)
    axes.set_ylabel("query (attending)", fontsize=8)
    axes.set_title("\n".join(title_lines), fontsize=10, parse_math=False)
    if longest <= ANNOTATE_UP_TO:
        middle = (vmin + vmax) / 2
        for (row, col), value in np.ndenumerate(matrix):
            colour = "black" if value > middle else "white"
            axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8, color=colour)
    colour_bar = figure.add_axes(((left + plot_w + 0.15) / width, bottom / height, 0.15 / width, plot_h / height))
    figure.colorbar(image, cax=colour_bar)
    return figure


def heatmap_image(
    matrix: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    title: str = "",
    vmax: float | None = None,
) -> Image.Image:
    """heatmap_figure rendered to an RGB PIL image."""
    return _figure_to_image(heatmap_figure(matrix, query_labels, key_labels, title, vmax))


def pooled_heatmap_image(
    matrix: np.ndarray, query_labels: list[str], key_labels: list[str], title: str = "", limit: int = POOLED_MAX
) -> Image.Image:
    """heatmap_image of a long input's (Tq, Tk) map, max-pooled to at most `limit` cells per side
    (drawn as is, cells thinner than a pixel would be dropped, peaks with them); each block is
    labelled by its first token and the title says how many tokens a cell holds."""
    matrix = np.asarray(matrix)  # (Tq, Tk)
    pooled = _shrink(matrix, limit)  # (≤ limit, ≤ limit)
    rows, cols = math.ceil(matrix.shape[0] / pooled.shape[0]), math.ceil(matrix.shape[1] / pooled.shape[1])
    if (rows, cols) != (1, 1):
        title = f"{title} (max over blocks of {rows}×{cols} tokens)".strip()
    return heatmap_image(pooled, query_labels[::rows], key_labels[::cols], title)


def _shrink(tiles: np.ndarray, limit: int) -> np.ndarray:
    """(..., Tq, Tk) -> at most (..., limit, limit) by max-pooling, so a sharp peak stays visible
    (several tiles at once: a layer's heads)."""
    *lead, tq, tk = tiles.shape
    fq, fk = math.ceil(tq / limit), math.ceil(tk / limit)
    if fq == 1 and fk == 1:
        return tiles
    rq, rk = math.ceil(tq / fq), math.ceil(tk / fk)
    padded = tiles
    if (rq * fq, rk * fk) != (tq, tk):  # edge blocks padded with −inf, which never wins a max
        padded = np.full((*lead, rq * fq, rk * fk), -np.inf, dtype=np.result_type(tiles.dtype, np.float32))
        padded[..., :tq, :tk] = tiles
    rows = padded.reshape(*lead, rq, fq, rk * fk).max(axis=-2)  # (..., rq, Tk'): whole rows at once, vectorised
    return rows.reshape(*lead, rq, rk, fk).max(axis=-1)  # (..., rq, rk); a NaN in a block stays NaN


def head_grid_image(weights: np.ndarray, title: str = "", per_head_scale: bool = True) -> Image.Image:
    """Every head at a glance: weights (L, H, Tq, Tk) -> one RGB image, layers down, heads across.

    Each thumbnail is scaled to its own maximum (per_head_scale, the default: diffuse heads stay
    visible) or all share one scale. Long sequences are max-pooled to THUMB_MAX per side. The
    tiles are laid out with numpy into one mosaic drawn by a single imshow, which keeps it fast.
    """
    weights = np.asarray(weights)  # (L, H, Tq, Tk); float32 stays float32 (a long input's layer is large)
    if not np.issubdtype(weights.dtype, np.floating):
        weights = weights.astype(np.float64)
    if weights.ndim != 4:
        raise ValueError(f"head grid needs weights of shape (layers, heads, Tq, Tk), got {weights.shape}")
    layers, heads = weights.shape[:2]
    tiles = [[_shrink(weights[layer, head], THUMB_MAX) for head in range(heads)] for layer in range(layers)]
    rows, cols = tiles[0][0].shape
    gap = max(1, round(0.12 * max(rows, cols)))
    mosaic = np.full((layers * (rows + gap) - gap, heads * (cols + gap) - gap), np.nan)  # NaN = gap
    scale_all = np.nanmax(weights) if weights.size else 1.0
    for layer in range(layers):
        for head in range(heads):
            tile = tiles[layer][head]  # (rows, cols)
            top = np.nanmax(tile) if per_head_scale else scale_all
            r, c = layer * (rows + gap), head * (cols + gap)
            mosaic[r : r + rows, c : c + cols] = tile / top if top > 0 else tile

    thumb = 0.55  # inches per tile on the longer side; a flat tile (one query row) keeps some height
    width = heads * thumb * cols / max(rows, cols) + 1.2
    height = layers * thumb * max(rows / max(rows, cols), 0.3) + 1.0
    figure = _new_figure(width, height, layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(mosaic, cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    head_centres = [head * (cols + gap) + (cols - 1) / 2 for head in range(heads)]
    layer_centres = [layer * (rows + gap) + (rows - 1) / 2 for layer in range(layers)]
    axes.set_xticks(head_centres, [str(head) for head in range(heads)], fontsize=7)
    axes.set_yticks(layer_centres, [str(layer) for layer in range(layers)], fontsize=7)
    axes.tick_params(length=0)
    axes.set_xlabel("head", fontsize=8)
    axes.set_ylabel("layer", fontsize=8)
    for spine in axes.spines.values():
        spine.set_visible(False)
    scale = "each head scaled to its own max" if per_head_scale else "one shared scale"
    axes.set_title(f"{title}\n({scale})" if title else f"({scale})", fontsize=9, parse_math=False)
    return _figure_to_image(figure)
