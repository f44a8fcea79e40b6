"""Image tab: top-5 labels and the [CLS] → patch attention drawn over the image, plus rollout.

The upload arrives as a file path (gr.File), so the project's own loader is the first to open it
and a broken file gets one clear message (gr.Image would open it with PIL before any handler)."""

from __future__ import annotations

import gradio as gr

from attn_demos.render.interactive import image_legend_html
from attn_demos.render.overlay import patch_overlay
from attn_demos.render.patch_table import patch_table_html
from attn_demos.tasks.examples import example_images
from attn_demos.tasks.images import ImageResult
from attn_demos.tasks.images import classify_image as classify
from attn_demos.tasks.views import check_badge
from attn_demos.ui import wiring
from attn_demos.ui.common import (
    export_files,
    export_name,
    export_payload,
    head_choices_for,
    layer_choices,
    parse_head_or_default,
    parse_layer,
    status_text,
    user_model,
)
from attn_demos.ui.flow_estimate import flow_estimate_text, flow_seconds

TAB = "classify_image"
DEFAULT_LAYER = "mean"
REDRAW_OUTPUTS = ("status", "badge", "overlay", "rollout", "patches", "numbers", "png", "json", "overlay_scale", "rollout_scale")
RUN_OUTPUTS = ("state", "inputs", "labels", "layers", "heads", "flow_estimate", "flow") + REDRAW_OUTPUTS
FLOW_OUTPUTS = ("status", "flow", "flow_scale")  # errors land in the status line
OVERLAY_CMAP = "inferno"  # patch_overlay's colour map: its legend must say the same
EXPORT_OUTPUTS = ("status", "png", "json")


def classify_image(image, layer, head, model: str | None = None) -> dict:
    """Classify the image, then draw where [CLS] looks on the model's patch grid."""
    named = user_model(model)
    result = classify(image, source=named)
    return {
        **redraw(result, layer, head),
        "status": status_text(result.notices, result.model if named else None),
        "state": result,
        "inputs": {"model": named},
        "labels": dict(result.labels),
        "layers": layer_choices(result.num_layers, parse_layer(layer, DEFAULT_LAYER)),
        "heads": head_choices_for([h for h in result.head_options() if h != "rollout"], parse_head_or_default(head)),
        "flow_estimate": flow_estimate_text(len(result.tokens), result.num_layers),
    }


def redraw(result: ImageResult | None, layer, head) -> dict:
    if result is None:
        return {"status": "Upload an image (or pick an example) and press Classify."}
    layer, head = _layer_head(layer, head)
    patch_map = result.cls_patch_map(layer, head)  # (rows, cols)
    error = max(result.check_error(layer, head), result.check_error(head="rollout"))
    rows, cols = result.grid
    rolled = result.cls_patch_map(head="rollout")  # (rows, cols)
    return {
        "status": status_text(result.notices),
        "badge": check_badge(error, result.measure),
        "overlay": patch_overlay(result.image, patch_map, cmap=OVERLAY_CMAP),
        "rollout": patch_overlay(result.image, rolled, cmap=OVERLAY_CMAP),
        "overlay_scale": overlay_scale(patch_map, "[CLS] → patch attention"),
        "rollout_scale": overlay_scale(rolled, "rollout [CLS] → patch"),
        "patches": patch_table_html(patch_map, title=f"[CLS] → each of the {rows}×{cols} patches"),
        "numbers": {"grid": [rows, cols], "cls_to_patches": patch_map.round(5).tolist()},
    }


def export(result: ImageResult | None, inputs: dict | None, layer, head) -> dict:
    """Write the overlay as classify_image-layerL-headH.png and every number as .json."""
    if result is None:
        return {"status": "Classify an image first."}
    layer, head = _layer_head(layer, head)
    patch_map = result.cls_patch_map(layer, head)  # (rows, cols)
    view = result.view(layer, head)
    payload = export_payload(
        TAB, result.model, layer, head, view, input_text=None, chosen_token="[CLS]",
        labels=result.labels, grid=list(result.grid), cls_to_patches=patch_map.tolist(),
    )
    overlay = patch_overlay(result.image, patch_map)
    return {"status": "Exported.", **export_files(export_name(TAB, layer, head), overlay, payload)}


def flow(result: ImageResult | None, on_progress=None, cancelled=None) -> dict:
    """Attention flow from every patch into [CLS], drawn over the image (seconds: on request only);
    on_progress(done, total) and cancelled() come from wiring.flow_handler."""
    if result is None:
        return {"status": "Classify an image first."}
    flow_map = result.flow_map(on_progress, cancelled)  # (rows, cols)
    return {
        "status": "",
        "flow": patch_overlay(result.image, flow_map, cmap=OVERLAY_CMAP),
        "flow_scale": overlay_scale(flow_map, "attention flow into [CLS]"),
    }


def overlay_scale(patch_map, label: str) -> str:
    """The colour scale of an overlay: patch_overlay shades 0 … the map's maximum (fully tinted)."""
    top = float(patch_map.max())
    return image_legend_html(OVERLAY_CMAP, 0.0, top if top > 0 else 1.0, label)


def flow_estimate_seconds(result: ImageResult | None) -> float:
    return flow_seconds(len(result.tokens), result.num_layers) if result is not None else 0.0


def _layer_head(layer, head):
    head = parse_head_or_default(head)
    if head == "rollout":  # the rollout picture is always beside the chosen one
        head = "mean"
    return parse_layer(layer, DEFAULT_LAYER), head


def build() -> None:
    usable, model = wiring.model_box(TAB)
    samples = example_images()
    image = gr.File(label="Image", value=samples[0] if samples else None, elem_id="image-input")
    examples = gr.Examples([[e] for e in samples], [image], cache_examples=False) if samples else None
    with gr.Row():
        layer, head = wiring.layer_head_controls(TAB, "image")
    button = gr.Button("Classify", variant="primary", elem_id="image-run", interactive=usable)
    results = wiring.Results(TAB)
    out = {
        "state": results.state,
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line("image"),
        "labels": gr.Label(num_top_classes=5, label="top-5", elem_id="image-labels"),
        "badge": wiring.badge_line("image"),
        "layers": layer,
        "heads": head,
    }
    with gr.Row():
        with gr.Column():
            out["overlay"] = gr.Image(label="[CLS] → patches (chosen layer/head)", type="pil", elem_id="image-overlay")
            out["overlay_scale"] = wiring.html_output("overlay-scale", "image")
        with gr.Column():
            out["rollout"] = gr.Image(label="rollout over all layers", type="pil", elem_id="image-rollout")
            out["rollout_scale"] = wiring.html_output("rollout-scale", "image")
    out["patches"] = wiring.html_output("patches", "image")
    with gr.Accordion("Attention flow into [CLS] (max-flow through all layers; takes seconds)", open=False):
        out["flow_estimate"] = gr.Markdown(label="flow estimate", show_label=False, elem_id="image-flow-estimate")
        with gr.Row():
            flow_button = gr.Button("Compute flow", elem_id="image-flow-run")
            stop_button = gr.Button("Stop", elem_id="image-flow-stop", variant="stop")
        out["flow"] = gr.Image(label="attention flow", type="pil", elem_id="image-flow")
        out["flow_scale"] = wiring.html_output("flow-scale", "image")
    export_button = wiring.export_accordion("image", out)

    run_inputs = [image, layer, head, model]
    run_handler, run_outputs = wiring.handler(classify_image, RUN_OUTPUTS), wiring.outputs_for(out, RUN_OUTPUTS)
    wiring.run_on_click_and_enter(button, [], usable, run_handler, run_inputs, run_outputs, "classify_image", results)
    wiring.run_example_on_click(examples, usable, run_handler, run_inputs, run_outputs, results)
    flowing = results.view_on(
        flow_button.click, wiring.flow_handler(flow, FLOW_OUTPUTS, flow_estimate_seconds), [out["state"]],
        wiring.outputs_for(out, FLOW_OUTPUTS), what="attention flow", api_name="classify_image_flow",
    )
    stop_button.click(None, None, None, cancels=[flowing], api_visibility="private")
    results.view_on(
        export_button.click, wiring.handler(export, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head],
        wiring.outputs_for(out, EXPORT_OUTPUTS), what="export", api_name="classify_image_export",
    )
    results.redraw_on(
        [layer, head], wiring.handler(redraw, REDRAW_OUTPUTS), [out["state"], layer, head],
        wiring.outputs_for(out, REDRAW_OUTPUTS),
    )
