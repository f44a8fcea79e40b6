"""A patch-attention map as an HTML table: one cell per patch, shaded by its score, exact value on hover."""

from __future__ import annotations

import html

import numpy as np


def patch_table_html(patch_scores: np.ndarray, title: str | None = None) -> str:
    """patch_scores: (rows, cols) -> a <table> of rows × cols <td class="attn-patch"> cells."""
    scores = np.asarray(patch_scores, dtype=np.float64)  # (rows, cols)
    top = scores.max() if scores.size and scores.max() > 0 else 1.0
    cells_per_side = max(scores.shape)
    size = max(4, min(22, 360 // cells_per_side))
    parts = [f'<div class="attn-patches">{f"<div><b>{html.escape(title)}</b></div>" if title else ""}']
    parts.append('<table style="border-collapse: collapse;">')
    for r, row in enumerate(scores):
        parts.append("<tr>")
        for c, value in enumerate(row):
            alpha = max(0.0, value / top)
            parts.append(
                f'<td class="attn-patch" data-row="{r}" data-col="{c}" data-score="{value!r}" '
                f'title="patch {r},{c}: {value:.4g}" style="width:{size}px;height:{size}px;padding:0;'
                f'background: rgba(239, 68, 60, {alpha:.3f}); border: 1px solid #ddd;"></td>'
            )
        parts.append("</tr>")
    parts.append("</table></div>")
    return "".join(parts)
