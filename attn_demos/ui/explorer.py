"""Explorer tab: a text's self-attention per layer/head, the grid of every head, fusion, rollout,
and attention flow on request."""

from __future__ import annotations

import copy
import threading

import gradio as gr

from attn_demos.adapters.families import DECODER
from attn_demos.core.pooling import display_tokens
from attn_demos.render.heatmap import heatmap_image
from attn_demos.render.interactive import head_view_html, heatmap_html, parse_selection
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.examples import load_examples
from attn_demos.tasks.explorer import ExploreResult
from attn_demos.tasks.explorer import explore as explore_text
from attn_demos.tasks.registry import model_source, model_status
from attn_demos.ui import linked, wiring
from attn_demos.ui.common import (
    export_files,
    export_name,
    export_payload,
    head_choices_for,
    layer_choices,
    numbers_preview,
    parse_head_or_default,
    parse_layer,
    status_text,
    token_choices,
    user_model,
)
from attn_demos.ui.flow_estimate import flow_estimate_text, flow_seconds

TAB = "explore"
PICK_ID = "explore-pick"  # the hidden textbox that receives clicks on the grid and the heatmap
DEFAULT_LAYER = 0
DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
HEATMAP_DECIMALS = 6  # the page's heatmap carries 6 places: a cell matches the neuron view to 1e-6 ...
LONG_HEATMAP_DECIMALS = 4  # ... up to FULL_PRECISION_CELLS cells; longer inputs get 4 (within 5e-5)
FULL_PRECISION_CELLS = 128 * 128
HEAD_VIEW_TITLE = "head view: hover a token for its lines; click to keep it (and inspect it)"
VIEW_OUTPUTS = ("status", "badge", "heatmap", "received", "numbers", "png", "json", "selection")
REDRAW_OUTPUTS = VIEW_OUTPUTS + ("grid", "neuron")
LAYER_OUTPUTS = REDRAW_OUTPUTS + ("head_view",)  # a Layer change also redraws the head view (of one layer)
RUN_OUTPUTS = (
    ("state", "inputs", "grid", "layers", "heads", "flow_tokens", "flow_estimate", "flow")
    + VIEW_OUTPUTS + ("head_view", "query", "neuron")
)
PICK_OUTPUTS = ("layers", "heads", "query", "flow_tokens") + LAYER_OUTPUTS  # a grid click may change the layer
NEURON_OUTPUTS = ("status", "neuron")
FLOW_OUTPUTS = ("status", "flow")  # errors land in the status line
EXPORT_OUTPUTS = ("status", "png", "json")
NEURON_HINT = "Click a row of the heatmap (or choose a query token and Show neuron view)."
WORDS_HINT = "Turn off “Merge word pieces” for the neuron view."
ROLLOUT_HINT = "Rollout runs through every layer: choose a Head other than rollout for the neuron view."


def explore(text: str, layer, head, words: bool, model: str | None = None) -> dict:
    """Run the model once, then draw the chosen view (the state keeps the result for re-drawing)."""
    named = user_model(model)
    result = explore_text(text, source=named)
    drawn = redraw(result, layer, head, words)
    shown_layer, shown_head = _layer_head(layer, head)
    return {
        **drawn,
        "status": status_text(result.notices, result.model if named else None),
        "state": result,
        "inputs": {"text": text, "model": named},
        "layers": layer_choices(result.num_layers, parse_layer(layer, DEFAULT_LAYER)),
        "heads": head_choices_for(result.head_options(), parse_head_or_default(head)),
        "flow_tokens": token_choices(result.tokens),
        "query": token_choices(result.tokens, None),  # nobody chose a query yet
        "flow_estimate": flow_estimate_text(len(result.tokens), result.num_layers),
        "head_view": head_view(result, shown_layer, shown_head),
    }


def head_view(result: ExploreResult, layer, head) -> str:
    """The head view of the shown layer, opened on the shown head (linked.head_view): every layer's
    would be L times the page's bytes and time, so another layer's is sent when the Layer changes
    (redraw_layer); when Layer is the mean of layers, every layer's, to choose one in the view."""
    if not isinstance(layer, int):
        return linked.head_view(TAB, result.shown, result.tokens, None, layer, head, HEAD_VIEW_TITLE, PICK_ID)
    return head_view_html(
        result.shown[layer : layer + 1], result.tokens, title=HEAD_VIEW_TITLE, layer_labels=[str(layer)],
        heads=[head] if isinstance(head, int) else None, target_id=PICK_ID, group=TAB, max_bytes=linked.HEAD_VIEW_BYTES,
    )


_first_results: dict[str, dict] = {}  # the Explorer's model -> the default text's outputs, made once per process
_first_lock = threading.Lock()


def first_result() -> dict:
    """What the page opens on: the default text on the default controls, run once per model and
    process and reused, so only the first visitor after a start waits for it. Each visitor gets
    a copy of the result (the app may let go of a visitor's copy, never of the one kept here)."""
    source = model_source(TAB)
    with _first_lock:  # visitors who arrive during the first run wait for it instead of running it again
        if source not in _first_results:
            _first_results[source] = explore(DEFAULT_TEXT, DEFAULT_LAYER, "mean", False)
    outputs = _first_results[source]
    return {**outputs, "state": copy.copy(outputs["state"])}


def redraw(result: ExploreResult | None, layer, head, words: bool, query=None) -> dict:
    """Draw another layer/head of the same text without running the model again; `query` (a
    token index) is marked in the heatmap and its row shown as the highlighted text."""
    if result is None:
        return {"status": "Type a text and press Show attention."}
    layer, head = _layer_head(layer, head)
    view = result.view(layer, head, words)
    chosen = _index_or_none(query, len(view.query_labels))
    if chosen is None:
        received = highlight_html(view.key_labels, view.matrix.mean(axis=0), title="attention each token receives (mean over rows)")
    else:
        title = f"where “{view.query_labels[chosen]}” (row {chosen}) looks"
        received = highlight_html(view.key_labels, view.matrix[chosen], title=title)
    causal = result.kind == DECODER and not words  # a later token is masked, not a weight of 0
    tokens = len(view.query_labels)
    return {
        "status": status_text(view.notices),
        "badge": view.check_badge,
        "heatmap": heatmap_html(
            view.matrix, view.query_labels, view.key_labels, view.title, chosen_query=chosen,
            target_id=PICK_ID, decimals=heatmap_decimals(view.matrix.size),
            visible_keys=list(range(1, tokens + 1)) if causal else None,
        ),
        "received": received,
        "numbers": numbers_preview(view),
        "grid": linked.grid(
            result.shown, layer, head, target_id=PICK_ID,
            title=f"all {result.num_layers} layers × {result.num_heads} heads (click one to show it)",
        ),
        "selection": linked.selection(TAB, layer, head, None if words else chosen),
        "neuron": neuron_view(result, layer, head, chosen, words),
    }


def redraw_layer(result: ExploreResult | None, layer, head, words: bool, query=None) -> dict:
    """redraw, and the head view of the layer (a Layer change or a grid click)."""
    drawn = redraw(result, layer, head, words, query)
    if result is None:
        return drawn
    return {**drawn, "head_view": head_view(result, *_layer_head(layer, head))}


def heatmap_decimals(cells: int) -> int:
    """Places the page's heatmap carries: 6 for inputs up to FULL_PRECISION_CELLS, else 4 (payload size)."""
    return HEATMAP_DECIMALS if cells <= FULL_PRECISION_CELLS else LONG_HEATMAP_DECIMALS


def pick(selection: str, result: ExploreResult | None, layer, head, words: bool, query=None) -> dict:
    """A click on the grid (shows that layer and head), on a heatmap row or on a query token of the
    head view (selects that token and shows its neuron view when one layer and one head are shown)."""
    chosen = parse_selection(selection)
    if result is None or chosen is None:
        return {}
    if chosen["view"] in ("grid", "neuron"):  # another layer and head (the neuron view's selects keep its row)
        layer, head = int(chosen["layer"]), int(chosen["head"])
        query = chosen.get("query", query)
        drawn = {
            **redraw_layer(result, layer, head, words, query),
            "layers": layer_choices(result.num_layers, layer),
            "heads": head_choices_for(result.head_options(), head),
        }
        return drawn if chosen["view"] == "grid" else {**drawn, "query": token_choices(result.tokens, int(query))}
    if chosen["view"] == "head" and words:  # the head view's tokens are not the heatmap's merged words
        return {}
    if chosen["view"] not in ("heatmap", "head"):
        return {}
    query = int(chosen["query"])
    drawn = redraw(result, layer, head, words, query)
    if words:  # rows are words then, not the tokens the model saw
        return drawn
    token = token_choices(result.tokens, query)
    return {**drawn, "query": token, "flow_tokens": token}


def neuron(result: ExploreResult | None, layer, head, query, words: bool = False) -> dict:
    """The Show neuron view button: the chosen query token's neuron view (q, each k, their products
    and sums, the scale, the softmax and the weight shown; one more forward pass), or why there is none."""
    if result is None:
        return {"status": "Run the model first (Show attention)."}
    if _index_or_none(query, len(result.tokens)) is None:
        return {"status": "⚠️ choose a query token for the neuron view"}
    return {"status": "", "neuron": neuron_view(result, layer, head, query, words)}


def neuron_view(result: ExploreResult, layer, head, query, words: bool = False) -> str:
    """The neuron view of row `query` in the selected layer and head (linked.neuron: of the sharpest
    head when Head is a fusion), or a line saying what it needs."""
    layer, head = _layer_head(layer, head)
    index = _index_or_none(query, len(result.tokens))
    if words or head == "rollout" or index is None:
        return f'<div class="attn-note">{WORDS_HINT if words else ROLLOUT_HINT if head == "rollout" else NEURON_HINT}</div>'
    label = display_tokens(result.tokens)[index]
    return linked.neuron(result.neuron, result.shown, result.tokens, layer, head, index, label, PICK_ID)


def export(result: ExploreResult | None, inputs: dict | None, layer, head, words: bool, query=None) -> dict:
    """Write the shown view as explore-layerL-headH.png/.json (every number, and how it was chosen)."""
    if result is None:
        return {"status": "Run the model first (Show attention)."}
    layer, head = _layer_head(layer, head)
    view = result.view(layer, head, words)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    index = _index_or_none(query, len(view.query_labels))  # as the page shows it: None until a row is clicked
    chosen = None if index is None else {"index": index, "token": view.query_labels[index]}
    payload = export_payload(TAB, result.model, layer, head, view, words=bool(words),
                             input_text=(inputs or {}).get("text"), chosen_token=chosen)
    return {"status": "Exported.", **export_files(export_name(TAB, layer, head), picture, payload)}


def flow(result: ExploreResult | None, token_index, on_progress=None, cancelled=None) -> dict:
    """Attention flow into one token, as highlighted text (seconds for long texts: on request only);
    on_progress(done, total) and cancelled() come from wiring.flow_handler."""
    if result is None:
        return {"status": "Run the model first (Show attention)."}
    index = 0 if token_index in (None, "") else int(token_index)
    scores = result.flow_scores(index, on_progress, cancelled)  # (T,)
    title = (
        f"attention flow into token {index} “{display_tokens(result.tokens)[index]}” through all {result.num_layers} layers "
        f"(from {result.check_summary})"
    )
    return {"status": "", "flow": highlight_html(result.tokens, scores, title=title)}


def flow_estimate_seconds(result: ExploreResult | None, token_index=None) -> float:
    return flow_seconds(len(result.tokens), result.num_layers) if result is not None else 0.0


def _index_or_none(value, length: int) -> int | None:
    """A token index from a dropdown or a click, or None when blank or out of range."""
    if value in (None, ""):
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < length else None


def _layer_head(layer, head):
    head = parse_head_or_default(head)
    layer = 0 if head == "rollout" else parse_layer(layer, DEFAULT_LAYER)
    return layer, head


def build():
    """The tab; returns what wires its first result to the page's load (app.build calls it with the Blocks)."""
    usable, model = wiring.model_box(TAB)
    text = gr.Textbox(label="Text", lines=1, max_lines=8, value=DEFAULT_TEXT, elem_id="explore-text")  # Enter runs
    examples = gr.Examples([[row["text"]] for row in load_examples(TAB)], [text], cache_examples=False)
    with gr.Row():
        layer, head = wiring.layer_head_controls(TAB, "explore", layer_value=DEFAULT_LAYER, with_rollout=True)
        words = linked.words_checkbox()
    button = gr.Button("Show attention", variant="primary", elem_id="explore-run", interactive=usable)
    picked = wiring.pick_box(PICK_ID)
    results = wiring.Results(TAB)
    out = {
        "state": results.state,
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line("explore"),
        "badge": wiring.badge_line("explore"),
        "heatmap": wiring.html_output("heatmap", "explore"),
        "received": wiring.html_output("received", "explore"),
        "grid": wiring.html_output("grid", "explore"),
        "layers": layer,
        "heads": head,
        "selection": linked.selection_box(TAB),
    }
    with gr.Accordion("Head view (every head's lines; hover a token)", open=True, elem_id="explore-head-view-accordion"):
        out["head_view"] = wiring.html_output("head-view", "explore")
    with gr.Accordion("Neuron view (how one weight is made from q and k)", open=True, elem_id="explore-neuron-accordion"):
        with gr.Row():
            out["query"] = gr.Dropdown([], label="Query token", elem_id="explore-query")
            neuron_button = gr.Button("Show neuron view", elem_id="explore-neuron-run")
        out["neuron"] = wiring.html_output("neuron", "explore")
    with gr.Accordion("Attention flow (max-flow through all layers; takes seconds)", open=False):
        out["flow_estimate"] = gr.Markdown(label="flow estimate", show_label=False, elem_id="explore-flow-estimate")
        out["flow_tokens"] = gr.Dropdown([], label="Flow into token", elem_id="explore-flow-token")
        with gr.Row():
            flow_button = gr.Button("Compute flow", elem_id="explore-flow-run")
            stop_button = gr.Button("Stop", elem_id="explore-flow-stop", variant="stop")
        out["flow"] = wiring.html_output("flow", "explore")
    export_button = wiring.export_accordion("explore", out)

    run_inputs = [text, layer, head, words, model]
    run_handler, run_outputs = wiring.handler(explore, RUN_OUTPUTS), wiring.outputs_for(out, RUN_OUTPUTS)
    wiring.run_on_click_and_enter(button, [text], usable, run_handler, run_inputs, run_outputs, "explore", results)
    wiring.run_example_on_click(examples, usable, run_handler, run_inputs, run_outputs, results)
    flowing = results.view_on(
        flow_button.click, wiring.flow_handler(flow, FLOW_OUTPUTS, flow_estimate_seconds), [out["state"], out["flow_tokens"]],
        wiring.outputs_for(out, FLOW_OUTPUTS), what="attention flow", api_name="explore_flow",
    )
    stop_button.click(None, None, None, cancels=[flowing], api_visibility="private")
    results.view_on(
        export_button.click, wiring.handler(export, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, words, out["query"]],
        wiring.outputs_for(out, EXPORT_OUTPUTS), what="export", api_name="explore_export",
    )
    view_inputs = [out["state"], layer, head, words, out["query"]]
    results.redraw_on(
        [layer], wiring.handler(redraw_layer, LAYER_OUTPUTS), view_inputs, wiring.outputs_for(out, LAYER_OUTPUTS)
    )
    results.redraw_on(
        [head, words], wiring.handler(redraw, REDRAW_OUTPUTS), view_inputs, wiring.outputs_for(out, REDRAW_OUTPUTS),
    )
    results.view_on(
        picked.change, wiring.handler(pick, PICK_OUTPUTS, keep_missing=True), [picked] + view_inputs,
        wiring.outputs_for(out, PICK_OUTPUTS), draws=True,
    )
    results.view_on(
        neuron_button.click, wiring.handler(neuron, NEURON_OUTPUTS), [out["state"], layer, head, out["query"], words],
        wiring.outputs_for(out, NEURON_OUTPUTS), follows_controls=True, what="neuron view",
    )

    def open_on_a_result(blocks: gr.Blocks) -> None:
        """The page opens on the default text's views (a run like any other: a click before it lands wins)."""
        if model_status(TAB)[0]:  # the configured model loads (a visitor's own model is named after the page opens)
            results.run_on(blocks.load, wiring.handler(first_result, RUN_OUTPUTS), [], run_outputs)

    return open_on_a_result
