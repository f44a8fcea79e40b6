"""The views of one attention stack that follow one selection in a tab (Layer, Head, a clicked
row): the layer × head grid, the head view, the neuron view and the hidden selection they read
(render/interactive/selection.py). The Explorer, Translation, Summarization, Question answering
and Text generation tabs build theirs here, so each follows the same rules:

- the head view is sent with a run only; a redraw sends the selection (a few bytes) and the head
  view follows it in the browser: the selected layer, the selected head (or, when Head is a
  fusion, the heads with the most weight between tokens), the clicked row;
- the neuron view is drawn for a clicked row: of the selected layer and head, or, when Head (or
  Layer) is not one, of the head with the most weight from that row between tokens
  (tasks.views.sharpest_head), which its title says; its own layer and head selects set the tab's.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import numpy as np

from attn_demos.core.pooling import is_special
from attn_demos.render.interactive import head_grid_html, head_view_html, neuron_view_html, selection_html
from attn_demos.tasks.views import sharpest_head

HEAD_VIEW_BYTES = 800_000  # a head view drops its faintest lines beyond this (it says which)
CHECKBOX_MIN_WIDTH = 220  # px: in a narrow window the checkbox's column wraps below Layer and Head, its label whole


def selection_box(tab: str):
    """The hidden element that carries the tab's selection to its views."""
    return gr.HTML(visible="hidden", label="selection", elem_id=f"{tab}-selection")


def words_checkbox():
    """The "Merge word pieces into words" checkbox, beside Layer and Head in a row (below them in a
    narrow window): in a column of its own, since Gradio squeezes the controls of one form onto one line."""
    with gr.Column(min_width=CHECKBOX_MIN_WIDTH):
        return gr.Checkbox(label="Merge word pieces into words", value=False)


def selection(tab: str, layer, head, query: int | None = None) -> str:
    return selection_html(tab, layer, head, query)


def head_view(
    tab: str,
    weights: np.ndarray,
    query_tokens: list[str],
    key_tokens: list[str] | None,
    layer,
    head,
    title: str,
    target_id: str | None = None,
) -> str:
    """weights (L, H, Tq, Tk) -> the tab's head view, opened on the selected layer and head."""
    return head_view_html(
        weights,
        query_tokens,
        key_tokens,
        title=title,
        layer=layer if isinstance(layer, int) else 0,
        heads=[head] if isinstance(head, int) else None,
        target_id=target_id,
        group=tab,
        max_bytes=HEAD_VIEW_BYTES,
    )


def grid(weights: np.ndarray, layer, head, title: str, target_id: str | None) -> str:
    """weights (L, H, Tq, Tk) -> every layer × head, the selected one outlined."""
    single = isinstance(layer, int) and isinstance(head, int)
    return head_grid_html(weights, shown=(layer, head) if single else None, title=title, target_id=target_id)


def neuron(
    terms_of: Callable[[int, int, int], dict],
    weights: np.ndarray,
    key_tokens: list[str],
    layer,
    head,
    query: int,
    query_label: str,
    target_id: str | None,
    what: str = "query",
) -> str:
    """The neuron view of row `query` (weights (L, H, Tq, Tk) as shown; terms_of(layer, head, query)
    gives the terms): of the selected layer and head, else of the sharpest head (module docstring)."""
    chosen = ""
    if not (isinstance(layer, int) and isinstance(head, int)):
        specials = [is_special(t) for t in key_tokens]
        layer, head = sharpest_head(weights, query, specials, layer)
        chosen = " · the head with the most weight from this row between tokens (choose another below)"
    terms = terms_of(layer, head, query)
    title = f"neuron view: layer {layer}, head {head}, {what} {query} “{query_label}”{chosen} ({terms['check_text']})"
    return neuron_view_html(terms, title=title, target_id=target_id, shape=weights.shape[:2], query=query)
