"""The shared script and style of every interactive view, to be put on the page once.

INTERACTIVE_HEAD is passed to Gradio 6 as `demo.launch(head=INTERACTIVE_HEAD)` (Gradio 6 moved
`head` from gr.Blocks(...) to launch()). `gr.HTML(..., head=INTERACTIVE_HEAD)` works as well (checked:
two such components may both insert it; the script ignores its second run).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
INTERACTIVE_JS = (HERE / "view.js").read_text(encoding="utf-8")
INTERACTIVE_CSS = (HERE / "view.css").read_text(encoding="utf-8")
if "</script" in INTERACTIVE_JS.lower() or "</style" in INTERACTIVE_CSS.lower():
    raise RuntimeError("view.js / view.css must not close their own <script> / <style> element")
INTERACTIVE_HEAD = f"<style>\n{INTERACTIVE_CSS}</style>\n<script>\n{INTERACTIVE_JS}</script>\n"
