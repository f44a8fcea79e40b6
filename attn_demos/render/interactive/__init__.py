"""Interactive views drawn in the browser: arrays and labels in, one HTML fragment out (for gr.HTML).

Nothing here imports Gradio or attn_demos.tasks. Hover, zoom, head toggles and layer choice run in
the browser with no server round trip; only a click that selects something is sent back.

Views (each returns a str for a gr.HTML value):
    heatmap_html(matrix (Tq, Tk), query_labels, key_labels, title="", chosen_query=None,
                 marked_rows=None, target_id=None, scale=None, value_label="attention weight",
                 decimals=4)
    head_view_html(weights (L, H, Tq, Tk), query_tokens, key_tokens=None, title="", layer=0,
                   layer_labels=None, target_id=None, max_bytes=2_000_000)
    head_grid_html(weights (L, H, Tq, Tk), shown=(layer, head) or None, title="", target_id=None,
                   per_head_scale=True, layer_labels=None)
    neuron_view_html(terms: dict from attn_demos.adapters.neuron.neuron_terms, title="")
    answer_span_html(tokens, scores (T,), answer_start, answer_end, title="", label="attention")
    numbers_table_html(matrix, row_labels=None, column_labels=None, title="", decimals=4,
                       max_rows=20, max_columns=20)
    paired_table_html(first, second, names=("torch", "numpy"), ...)   # two matrices, one table
    overlay_html(image, patch_scores (rows, cols), title="", query=None, cmap="inferno", ...)
    panel_html(maps, layer_names, heads, shown, parts)   # Layer/Head without a server (notebooks)
    legend_html(ColourScale(vmin, vmax, cmap), label) / image_legend_html(cmap, vmin, vmax, label)
    selection_html(group, layer, head, query=None): the one selection that views built with the
                   same `group` follow in the browser (the head view: Layer, Head, clicked row)

Wiring (Gradio 6.31, checked in Chromium by tests/test_interactive_browser.py):
 1. Put the shared script and style on the page once:
        demo.launch(head=INTERACTIVE_HEAD)       # Gradio 6: `head` belongs to launch(), not Blocks()
    Scripts inside a gr.HTML value are not run (innerHTML); this script (page.view_scripts():
    one file per view after a shared one) finds every view (a MutationObserver: views set later,
    in any tab, are drawn too) and redraws a view whose value changed. Without it a view shows
    only its title, legend and a one-line note.
 2. Show a view: gr.HTML(value=heatmap_html(...), elem_id="explore-heatmap"); a handler returns
    a new fragment to update it.
 3. Receive clicks (grid cell, heatmap row, head-view query token): give the view
    target_id="explore-pick" and add a hidden textbox with that elem_id,
        pick = gr.Textbox(elem_id="explore-pick", visible="hidden")   # Gradio 6: in the DOM, not shown
        pick.change(on_pick, inputs=[pick, ...], outputs=[...])
    A click writes JSON into the textbox and dispatches "input"; Gradio then fires .change
    (.input does not fire: Gradio's Textbox raises it from key events only). Every click carries
    a fresh nonce, so clicking the same cell twice fires twice. Decode it with
        parse_selection(text) -> {"view": "grid", "layer": 3, "head": 5}
                               | {"view": "heatmap", "query": 7, "token": "it"}
                               | {"view": "head", "query": 7, "token": "it"}
                               | {"view": "neuron", "layer": 2, "head": 4, "query": 7}
                               | None (empty or malformed)
    Indices are positions in the matrix given (layer/head: 0-based positions in `weights`;
    layer_labels only change what is shown); "token" is the shown label, use the index. Several
    views may share one textbox: "view" tells them apart. In the page the same detail is a
    bubbling CustomEvent "attn-select" on the view's root. The textbox's .change becomes an API
    endpoint like any other event: give it an api_name or hide it as the app does elsewhere.
 4. Test hooks: a view's root is `[data-attn-view=kind]`, gets class "attn-ready" once drawn; the
    head view keeps `data-visible-lines`; grid cells are `button.attn-cell[data-layer][data-head]`;
    neuron table cells carry `data-value` (td.attn-softmax, td.attn-checked-against); the heatmap keeps
    `data-shown-rows` / `data-shown-cols` and draws on `canvas.attn-hm-canvas`; the tooltip is
    `.attn-tooltip` (one per page). "Hide special tokens" ([CLS], [SEP], <s>, </s>, <pad>, ... as
    attn_demos.core.pooling.is_special says) removes rows/columns (heatmap) or lines (head view)
    in the browser; weights are NOT renormalised, the heatmap's colour scale is refitted.

Numbers travel rounded (stated per view: heatmap 4 places, head view 3 places, grid 2, neuron
vectors 4 and its weights 9) as fixed-point integers (embed.fixed_point); labels are escaped.
"""

from attn_demos.render.interactive.answer import answer_span_html
from attn_demos.render.interactive.embed import parse_selection, read_payload
from attn_demos.render.interactive.head_grid import head_grid_html
from attn_demos.render.interactive.head_view import head_view_html
from attn_demos.render.interactive.heatmap import heatmap_html
from attn_demos.render.interactive.neuron import neuron_view_html
from attn_demos.render.interactive.overlay import overlay_html, overlay_legend_html
from attn_demos.render.interactive.page import INTERACTIVE_CSS, INTERACTIVE_HEAD, INTERACTIVE_JS
from attn_demos.render.interactive.panel import panel_html
from attn_demos.render.interactive.scale import ColourScale, image_legend_html, legend_html
from attn_demos.render.interactive.selection import selection_html
from attn_demos.render.interactive.table import numbers_table_html, paired_table_html

__all__ = [
    "INTERACTIVE_CSS",
    "INTERACTIVE_HEAD",
    "INTERACTIVE_JS",
    "ColourScale",
    "answer_span_html",
    "head_grid_html",
    "head_view_html",
    "heatmap_html",
    "image_legend_html",
    "legend_html",
    "neuron_view_html",
    "numbers_table_html",
    "overlay_html",
    "overlay_legend_html",
    "paired_table_html",
    "panel_html",
    "parse_selection",
    "read_payload",
    "selection_html",
]
