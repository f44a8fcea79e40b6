"""Explorer tab: a text's self-attention per layer/head, the grid of every head, fusion, rollout,
and attention flow on request."""

from __future__ import annotations

import gradio as gr

from attn_demos.render.heatmap import head_grid_image, heatmap_image
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.examples import load_examples
from attn_demos.tasks.explorer import ExploreResult
from attn_demos.tasks.explorer import explore as explore_text
from attn_demos.ui import wiring
from attn_demos.ui.common import (
    Choices,
    export_files,
    export_name,
    export_payload,
    head_choices_for,
    layer_choices,
    numbers_preview,
    parse_head_or_default,
    parse_layer,
    status_text,
    user_model,
)
from attn_demos.ui.flow_estimate import flow_estimate_text, flow_seconds

TAB = "explore"
DEFAULT_LAYER = 0
DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
REDRAW_OUTPUTS = ("status", "badge", "heatmap", "received", "numbers", "png", "json")
RUN_OUTPUTS = ("state", "inputs", "grid", "layers", "heads", "flow_tokens", "flow_estimate", "flow") + REDRAW_OUTPUTS
FLOW_OUTPUTS = ("status", "flow")  # errors land in the status line
EXPORT_OUTPUTS = ("status", "png", "json")


def explore(text: str, layer, head, words: bool, model: str | None = None) -> dict:
    """Run the model once, then draw the chosen view (the state keeps the result for re-drawing)."""
    named = user_model(model)
    result = explore_text(text, source=named)
    drawn = redraw(result, layer, head, words)
    grid = head_grid_image(result.library, title=f"all {result.num_layers} layers × {result.num_heads} heads")
    return {
        **drawn,
        "status": status_text(result.notices, result.model if named else None),
        "state": result,
        "inputs": {"text": text, "model": named},
        "grid": grid,
        "layers": layer_choices(result.num_layers, parse_layer(layer, DEFAULT_LAYER)),
        "heads": head_choices_for(result.head_options(), parse_head_or_default(head)),
        "flow_tokens": Choices([(f"{i}: {t}", i) for i, t in enumerate(result.tokens)], 0),
        "flow_estimate": flow_estimate_text(len(result.tokens), result.num_layers),
    }


def redraw(result: ExploreResult | None, layer, head, words: bool) -> dict:
    """Draw another layer/head of the same text without running the model again."""
    if result is None:
        return {"status": "Type a text and press Show attention."}
    layer, head = _layer_head(layer, head)
    view = result.view(layer, head, words)
    return {
        "status": status_text(view.notices),
        "badge": view.check_badge,
        "heatmap": heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title),
        "received": highlight_html(view.key_labels, view.matrix.mean(axis=0), title="attention each token receives (mean over rows)"),
        "numbers": numbers_preview(view),
    }


def export(result: ExploreResult | None, inputs: dict | None, layer, head, words: bool) -> dict:
    """Write the shown view as explore-layerL-headH.png/.json (every number, and how it was chosen)."""
    if result is None:
        return {"status": "Run the model first (Show attention)."}
    layer, head = _layer_head(layer, head)
    view = result.view(layer, head, words)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    payload = export_payload(TAB, result.model, layer, head, view, words=bool(words),
                             input_text=(inputs or {}).get("text"), chosen_token=None)
    return {"status": "Exported.", **export_files(export_name(TAB, layer, head), picture, payload)}


def flow(result: ExploreResult | None, token_index) -> dict:
    """Attention flow into one token, as highlighted text (seconds for long texts: on request only)."""
    if result is None:
        return {"status": "Run the model first (Show attention)."}
    index = 0 if token_index in (None, "") else int(token_index)
    scores = result.flow_scores(index)  # (T,)
    title = (
        f"attention flow into token {index} “{result.tokens[index]}” through all {result.num_layers} layers "
        f"(from maps that match the from-scratch recomputation to {result.max_abs_err:.1e})"
    )
    return {"status": "", "flow": highlight_html(result.tokens, scores, title=title)}


def flow_estimate_seconds(result: ExploreResult | None, token_index=None) -> float:
    return flow_seconds(len(result.tokens), result.num_layers) if result is not None else 0.0


def _layer_head(layer, head):
    head = parse_head_or_default(head)
    layer = 0 if head == "rollout" else parse_layer(layer, DEFAULT_LAYER)
    return layer, head


def build() -> None:
    usable, model = wiring.model_box(TAB)
    text = gr.Textbox(label="Text", lines=1, max_lines=8, value=DEFAULT_TEXT, elem_id="explore-text")  # Enter runs
    examples = gr.Examples([[row["text"]] for row in load_examples(TAB)], [text], cache_examples=False)
    with gr.Row():
        layer, head = wiring.layer_head_controls(TAB, "explore", layer_value=DEFAULT_LAYER, with_rollout=True)
        words = gr.Checkbox(label="Merge word pieces into words", value=False)
    button = gr.Button("Show attention", variant="primary", elem_id="explore-run", interactive=usable)
    out = {
        "state": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line("explore"),
        "badge": wiring.badge_line("explore"),
        "heatmap": gr.Image(label="attention (rows attend to columns)", type="pil", elem_id="explore-heatmap"),
        "received": wiring.html_output("received", "explore"),
        "grid": gr.Image(label="every layer × head", type="pil", elem_id="explore-grid"),
        "layers": layer,
        "heads": head,
    }
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
    wiring.run_on_click_and_enter(button, [text], usable, run_handler, run_inputs, run_outputs, api_name="explore")
    wiring.run_example_on_click(examples, usable, run_handler, run_inputs, run_outputs)
    flowing = flow_button.click(
        wiring.flow_handler(flow, FLOW_OUTPUTS, flow_estimate_seconds), [out["state"], out["flow_tokens"]],
        wiring.outputs_for(out, FLOW_OUTPUTS), api_visibility="private",
    )
    stop_button.click(None, None, None, cancels=[flowing], api_visibility="private")
    export_button.click(
        wiring.handler(export, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, words],
        wiring.outputs_for(out, EXPORT_OUTPUTS), api_name="explore_export",
    )
    for control in (layer, head, words):
        control.input(
            wiring.handler(redraw, REDRAW_OUTPUTS), [out["state"], layer, head, words],
            wiring.outputs_for(out, REDRAW_OUTPUTS), api_visibility="private",
        )
