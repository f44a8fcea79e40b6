"""Per-token scores as highlighted text: an HTML snippet, or a gradio.HighlightedText value.

Pieces are shown as text, not as tokenizer markers: "##ing" joins its word, "▁the" / "Ġthe" get a
leading space, byte-level and byte-fallback pieces are decoded ("ĠcafÃ©" reads " café"), special
tokens stand alone. Colour strength is the score divided by the largest
|score| (red for positive, purple for negative: the same scale as gradio.HighlightedText).
"""

from __future__ import annotations

import html

import numpy as np

from attn_demos.core.pooling import display_tokens, is_special, piece_texts, starts_word

POSITIVE_RGB = (239, 68, 60)  # gradio.HighlightedText's score colours
NEGATIVE_RGB = (128, 90, 213)


def _check(tokens: list[str], scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)  # (T,)
    if len(tokens) != scores.shape[0]:
        raise ValueError(f"{len(tokens)} tokens but {scores.shape[0]} scores")
    return scores


def normalised(scores: np.ndarray) -> np.ndarray:
    """(T,) -> (T,) in [-1, 1]: divided by the largest |score| (all zeros stay zeros; NaN -> 0)."""
    clean = np.where(np.isfinite(scores), scores, 0.0)  # (T,)
    top = np.abs(clean).max() if clean.size else 0.0
    return clean / top if top > 0 else clean


def display_pieces(tokens: list[str]) -> list[str]:
    """The text of each piece as it reads in the sentence, with a leading space where a word starts
    (except the first): ["[CLS]", "token", "##ization"] -> ["[CLS]", " token", "ization"]."""
    pieces = []
    for i, (token, text, new_word) in enumerate(zip(tokens, piece_texts(tokens), starts_word(tokens))):
        if not text and token and new_word:
            text = " "  # a bare "▁" or "Ġ" is a space of its own (a part of a character stays empty)
        pieces.append((" " if new_word and i > 0 and text != " " else "") + text)
    return pieces


def _background(weight: float) -> str:
    red, green, blue = POSITIVE_RGB if weight >= 0 else NEGATIVE_RGB
    return f"rgba({red}, {green}, {blue}, {abs(weight):.3f})"


def highlight_html(tokens: list[str], scores, title: str | None = None) -> str:
    """An HTML snippet: one <span class="attn-token" data-index data-score title> per token.

    scores: (T,). Background alpha = |score| / max |score|; data-score and the tooltip carry the
    exact value given. All token text is HTML-escaped; each span is direction-isolated (dir="auto")
    so right-to-left pieces do not reorder their neighbours.
    """
    scores = _check(tokens, scores)  # (T,)
    weights = normalised(scores)  # (T,)
    parts = ['<div class="attn-tokens" style="line-height: 2; font-size: 1rem; white-space: pre-wrap;">']
    if title:
        title_style = "font-weight: 600; margin-bottom: 0.25em;"
        parts.append(f'<div class="attn-title" style="{title_style}">{html.escape(title)}</div>')
    for index, (token, piece, label) in enumerate(zip(tokens, display_pieces(tokens), display_tokens(tokens))):
        text = piece.lstrip(" ") or piece  # a piece that is only a space keeps it inside its span
        if len(text) < len(piece):
            parts.append(" ")  # the space between words stays outside the highlight
        exact = repr(float(scores[index]))
        classes = "attn-token attn-special" if is_special(token) else "attn-token"
        parts.append(
            f'<span class="{classes}" dir="auto" data-index="{index}" data-score="{exact}"'
            f' title="{html.escape(label, quote=True)}: {exact}"'
            f' style="background-color: {_background(weights[index])}; border-radius: 3px; padding: 0 1px;">'
            f"{html.escape(text)}</span>"
        )
    parts.append("</div>")
    return "".join(parts)


def highlighted_text_value(tokens: list[str], scores) -> list[tuple[str, float]]:
    """The value for gradio.HighlightedText: [(piece text, score in [-1, 1]), ...].

    Gradio (checked in 6.31) draws numeric labels in "scores" mode: background rgba(239, 68, 60, s)
    for s > 0 and purple for s < 0, ignoring color_map (which only applies to string categories).
    So the scores are divided by the largest |score|; pieces keep their leading spaces so the
    sentence reads naturally (the component's default show_whitespaces=True keeps them).
    """
    weights = normalised(_check(tokens, scores))  # (T,)
    return [(piece, round(float(w), 4)) for piece, w in zip(display_pieces(tokens), weights)]
