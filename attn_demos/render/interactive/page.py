"""The shared script and style of every interactive view, to be put on the page once.

The script is one file per view (heatmap.js, head_view.js, head_grid.js, neuron.js, overlay.js, panel.js) after the part
they share (common.js), as BertViz keeps one script per view; view_scripts() joins them in that
order. INTERACTIVE_HEAD is passed to Gradio 6 as `demo.launch(head=INTERACTIVE_HEAD)` (Gradio 6
moved `head` from gr.Blocks(...) to launch()). `gr.HTML(..., head=INTERACTIVE_HEAD)` works as well
(checked: two such components may both insert it; the script ignores its second run).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
VIEW_SCRIPTS = ("common.js", "heatmap.js", "head_view.js", "head_grid.js", "neuron.js", "overlay.js", "panel.js")  # common.js first


def view_scripts() -> str:
    """Every view's script, after the shared one, as one script's text."""
    return "\n".join((HERE / name).read_text(encoding="utf-8") for name in VIEW_SCRIPTS)


INTERACTIVE_JS = view_scripts()
INTERACTIVE_CSS = (HERE / "view.css").read_text(encoding="utf-8")
if "</script" in INTERACTIVE_JS.lower() or "</style" in INTERACTIVE_CSS.lower():
    raise RuntimeError("the views' scripts and view.css must not close their own <script> / <style> element")
INTERACTIVE_HEAD = f"<style>\n{INTERACTIVE_CSS}</style>\n<script>\n{INTERACTIVE_JS}</script>\n"
