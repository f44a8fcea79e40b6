"""Image tab: a preview of the upload, top-5 labels and the attention of [CLS] (or of a patch clicked
on the overlay) drawn over the image with its values on hover, plus rollout.

The upload arrives as a file path (gr.File), so the project's own loader is the first to open it
and a broken file gets one clear message (gr.Image would open it with PIL before any handler)."""

from __future__ import annotations

import gradio as gr

from attn_demos.errors import BadInputError
from attn_demos.render.interactive import ColourScale, parse_selection
from attn_demos.render.interactive.overlay import ALPHA, overlay_html, overlay_legend_html
from attn_demos.render.overlay import patch_overlay
from attn_demos.render.patch_table import patch_table_html
from attn_demos.tasks.examples import example_images
from attn_demos.tasks.images import ImageResult, load_image
from attn_demos.tasks.images import classify_image as classify
from attn_demos.tasks.views import check_badge, describe, parse_index
from attn_demos.ui import wiring
from attn_demos.ui.common import (
    Choices,
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
PICK_ID = "image-pick"  # the hidden textbox that receives clicks on the overlay's patches
REDRAW_OUTPUTS = ("status", "badge", "overlay", "rollout", "patches", "numbers", "png", "json", "rollout_scale")
RUN_OUTPUTS = ("state", "inputs", "labels", "layers", "heads", "query", "flow_estimate", "flow") + REDRAW_OUTPUTS
PICK_OUTPUTS = ("query",) + REDRAW_OUTPUTS
FLOW_OUTPUTS = ("status", "flow", "flow_scale")  # errors land in the status line
OVERLAY_CMAP = "inferno"  # patch_overlay's colour map: its legend must say the same
EXPORT_OUTPUTS = ("status", "png", "json")
CLS = 0  # the query a run starts with: [CLS]
PREVIEW_SIDE = 448  # the preview is downscaled to at most this many pixels per side


def preview(image) -> dict:
    """The upload as the model will read it (downscaled if huge), before Classify; a file that is
    not an image shows nothing here and gets its message when classified."""
    try:
        picture, _ = load_image(image)
    except BadInputError:
        return {"preview": None}
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return {"preview": picture}


def classify_image(image, layer, head, model: str | None = None) -> dict:
    """Classify the image, then draw where [CLS] looks on the model's patch grid."""
    named = user_model(model)
    result = classify(image, source=named)
    return {
        **redraw(result, layer, head),
        "query": query_choices(result, CLS),
        "status": status_text(result.notices, result.model if named else None),
        "state": result,
        "inputs": {"model": named},
        "labels": dict(result.labels),
        "layers": layer_choices(result.num_layers, parse_layer(layer, DEFAULT_LAYER)),
        "heads": head_choices_for([h for h in result.head_options() if h != "rollout"], parse_head_or_default(head)),
        "flow_estimate": flow_estimate_text(len(result.tokens), result.num_layers),
    }


def redraw(result: ImageResult | None, layer, head, query=CLS) -> dict:
    """Draw where the query ([CLS], or the patch chosen) looks in the chosen layer and head,
    without running the model again."""
    if result is None:
        return {"status": "Upload an image (or pick an example) and press Classify."}
    layer, head = _layer_head(layer, head)
    query = _query(result, query)
    patch_map = result.patch_map(layer, head, query)  # (rows, cols)
    error = max(result.check_error(layer, head, query), result.check_error(head="rollout"))
    rows, cols = result.grid
    rolled = result.cls_patch_map(head="rollout")  # (rows, cols)
    name = result.tokens[query]
    patch = query - result.prefix if query >= result.prefix else None
    title = f"where {name} looks: {describe(layer, head)}"
    return {
        "status": status_text(result.notices),
        "badge": check_badge(error, result.measure),
        "overlay": overlay_html(result.image, patch_map, title, query=patch, cmap=OVERLAY_CMAP,
                                label=f"{name} → patch attention", target_id=PICK_ID),
        "rollout": patch_overlay(result.image, rolled, cmap=OVERLAY_CMAP),
        "rollout_scale": overlay_scale(rolled, "rollout [CLS] → patch"),
        "patches": patch_table_html(patch_map, title=f"{name} → each of the {rows}×{cols} patches"),
        "numbers": {
            "grid": [rows, cols], "query": name, "query_to_patches": patch_map.round(5).tolist(),
            "cls_to_patches": result.cls_patch_map(layer, head).round(5).tolist(),
        },
    }


def pick(selection: str, result: ImageResult | None, layer, head) -> dict:
    """A click on a patch of the overlay makes that patch the query."""
    chosen = parse_selection(selection)
    if result is None or chosen is None or chosen["view"] != "overlay":
        return {}
    query = result.prefix + int(chosen["patch"])
    return {**redraw(result, layer, head, query), "query": query_choices(result, query)}


def query_choices(result: ImageResult, selected: int) -> Choices:
    """The Query dropdown: [CLS] (and DeiT's distillation token), then every patch by row and column."""
    return Choices([(token, i) for i, token in enumerate(result.tokens)], selected)


def _query(result: ImageResult, value) -> int:
    """The Query control's value -> a token index; blank means [CLS]."""
    if value in (None, ""):
        return CLS
    index = parse_index(value, "query must be a token number")
    if not 0 <= index < len(result.tokens):
        raise BadInputError(f"choose a query between 0 ([CLS]) and {len(result.tokens) - 1}")
    return index


def export(result: ImageResult | None, inputs: dict | None, layer, head, query=CLS) -> dict:
    """Write the overlay as classify_image-layerL-headH.png and every number as .json."""
    if result is None:
        return {"status": "Classify an image first."}
    layer, head = _layer_head(layer, head)
    query = _query(result, query)
    patch_map = result.patch_map(layer, head, query)  # (rows, cols)
    view = result.view(layer, head)
    payload = export_payload(
        TAB, result.model, layer, head, view, input_text=None, chosen_token=result.tokens[query],
        labels=result.labels, grid=list(result.grid), query_to_patches=patch_map.tolist(),
        cls_to_patches=result.cls_patch_map(layer, head).tolist(),
    )
    overlay = patch_overlay(result.image, patch_map, cmap=OVERLAY_CMAP)
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
    """The colour scale of an overlay as patch_overlay draws it: 0 … the map's maximum, each colour
    at opacity ALPHA × its fraction of the maximum over the photo (0 leaves the photo unchanged)."""
    top = float(patch_map.max())
    return overlay_legend_html(ColourScale(0.0, top if top > 0 else 1.0, OVERLAY_CMAP), ALPHA, label)


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
    with gr.Row():
        image = gr.File(label="Image", value=samples[0] if samples else None, elem_id="image-input")
        first = preview(samples[0])["preview"] if samples else None
        shown = gr.Image(first, label="preview", type="pil", height=220, elem_id="image-preview", interactive=False)
    examples = gr.Examples([[e] for e in samples], [image], cache_examples=False) if samples else None
    with gr.Row():
        layer, head = wiring.layer_head_controls(TAB, "image")
        query = gr.Dropdown([], label="Query (or click a patch)", elem_id="image-query")
    button = gr.Button("Classify", variant="primary", elem_id="image-run", interactive=usable)
    picked = wiring.pick_box(PICK_ID)
    results = wiring.Results(TAB)
    out = {
        "state": results.state,
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line("image"),
        "labels": gr.Label(num_top_classes=5, label="top-5", elem_id="image-labels"),
        "badge": wiring.badge_line("image"),
        "layers": layer,
        "heads": head,
        "query": query,
        "preview": shown,
    }
    with gr.Row():
        with gr.Column():
            out["overlay"] = wiring.html_output("overlay", "image")
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

    image.change(wiring.handler(preview, ("preview",)), [image], [shown], api_visibility="private")
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
        export_button.click, wiring.handler(export, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, query],
        wiring.outputs_for(out, EXPORT_OUTPUTS), what="export", api_name="classify_image_export",
    )
    results.redraw_on(
        [layer, head, query], wiring.handler(redraw, REDRAW_OUTPUTS), [out["state"], layer, head, query],
        wiring.outputs_for(out, REDRAW_OUTPUTS),
    )
    results.view_on(
        picked.change, wiring.handler(pick, PICK_OUTPUTS, keep_missing=True), [picked, out["state"], layer, head],
        wiring.outputs_for(out, PICK_OUTPUTS), draws=True,
    )
