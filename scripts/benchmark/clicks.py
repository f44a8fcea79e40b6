"""What one click of a tab runs, without a browser: the task function, then the panel function
that turns its result into the tab's outputs.

The panels are the tabs' handlers in attn_demos/ui; this is the only module of the benchmark
that names them.
"""

from __future__ import annotations

from attn_demos.ui import explorer as explorer_panel
from attn_demos.ui import images as images_panel
from attn_demos.ui import qa as qa_panel
from attn_demos.ui import seq2seq as seq2seq_panel

LAYER, HEAD = "mean", "mean"  # what a tab shows first


def draw_seq2seq(result) -> dict:
    """Translation and Summarization tabs: a Seq2SeqResult -> the tab's outputs."""
    return seq2seq_panel.redraw(result, LAYER, HEAD, False)


def draw_answer(result) -> dict:
    return qa_panel.redraw(result, LAYER, HEAD, "answer")


def draw_image(result) -> dict:
    return images_panel.redraw(result, LAYER, HEAD)


def explore(text: str) -> dict:
    """The Explorer's whole click (task and panel: heatmap, head grid; exports only on request)."""
    return explorer_panel.explore(text, 0, HEAD, False)
