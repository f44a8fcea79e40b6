"""QA: the context's tokens shaded by attention, the answer span outlined, a legend under them.
Pure HTML (no script needed)."""

from __future__ import annotations

import html

import numpy as np

from attn_demos.core.pooling import display_tokens
from attn_demos.render.interactive.scale import ColourScale, legend_html
from attn_demos.render.tokens import display_pieces

SHADES = ColourScale(cmap="Oranges", low=0.0, high=0.75)  # light part only: dark text (#111, also in dark mode) stays readable
OUTLINE = "2px solid #1d4ed8"


def answer_span_html(tokens: list[str], scores, answer_start: int, answer_end: int, title: str = "",
                     label: str = "attention") -> str:
    """tokens (T,) with scores (T,) -> HTML: each token shaded on SHADES from 0 to max(scores),
    tokens answer_start..answer_end (inclusive) outlined as one span. Text is escaped."""
    tokens = [str(t) for t in tokens]
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)  # (T,)
    if scores.shape[0] != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {scores.shape[0]} scores")
    if not 0 <= answer_start <= answer_end < len(tokens):
        raise ValueError(f"answer span {answer_start}..{answer_end} is outside the {len(tokens)} tokens")
    finite = scores[np.isfinite(scores)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    scale = ColourScale(0.0, top, SHADES.cmap, SHADES.low, SHADES.high)
    colours = scale.css_colours(scores)
    parts = ['<div class="attn-answer" style="line-height: 2.1; font-size: 1rem; white-space: pre-wrap;">']
    if title:
        parts.append(f'<div class="attn-title" style="font-weight: 600;">{html.escape(title)}</div>')
    for index, (piece, label) in enumerate(zip(display_pieces(tokens), display_tokens(tokens))):
        text = piece.lstrip(" ") or piece
        if len(text) < len(piece):
            parts.append(" ")  # the space between words stays outside the shading and the outline
        if index == answer_start:
            parts.append(f'<span class="attn-answer-span" title="answer" style="outline: {OUTLINE};'
                         ' outline-offset: 1px; border-radius: 3px;">')
        exact = repr(float(scores[index]))
        parts.append(
            f'<span class="attn-token" dir="auto" data-index="{index}" data-score="{exact}"'
            f' title="{html.escape(label, quote=True)}: {float(scores[index]):.4f}"'
            f' style="background-color: {colours[index]}; color: #111; border-radius: 3px; padding: 0 1px;">{html.escape(text)}</span>'
        )
        if index == answer_end:
            parts.append("</span>")
    parts.append("</div>")
    parts.append(legend_html(scale, label))
    return "".join(parts)
