"""Image patches: top-5 labels and where [CLS] looks, on the model's own patch grid."""

import gradio as gr

from attn_demos.render.panels import images
from attn_demos.tasks.examples import example_images

from wiring import RESULT_TTL_SECONDS, handler, model_box, outputs_for


def build() -> None:
    model = model_box("classify_image")
    examples = example_images()
    image = gr.Image(label="Image", type="filepath", image_mode=None, value=examples[0] if examples else None, elem_id="image-input")
    if examples:
        gr.Examples([[e] for e in examples], [image])
    with gr.Row():
        layer = gr.Dropdown(["mean"], value="mean", label="Layer", elem_id="image-layer")
        head = gr.Dropdown(["mean", "max", "min"], value="mean", label="Head", elem_id="image-head")
    button = gr.Button("Classify", variant="primary", elem_id="image-run")
    out = {
        "state": gr.State(time_to_live=RESULT_TTL_SECONDS),
        "status": gr.Markdown(elem_id="image-status"),
        "labels": gr.Label(num_top_classes=5, label="Top-5", elem_id="image-labels"),
        "badge": gr.Markdown(elem_id="image-badge"),
        "layers": layer,
        "heads": head,
    }
    with gr.Row():
        out["overlay"] = gr.Image(label="[CLS] → patches (chosen layer/head)", type="pil", elem_id="image-overlay")
        out["rollout"] = gr.Image(label="rollout over all layers", type="pil", elem_id="image-rollout")
    out["patches"] = gr.HTML(elem_id="image-patches")
    with gr.Accordion("Attention flow into [CLS] (max-flow through all layers; takes seconds)", open=False):
        flow_button = gr.Button("Compute flow", elem_id="image-flow-run")
        out["flow"] = gr.Image(label="attention flow", type="pil", elem_id="image-flow")
    with gr.Accordion("Export", open=False):
        out["png"] = gr.File(label="PNG")
        out["json"] = gr.File(label="JSON (the numbers on screen)")
        out["numbers"] = gr.JSON(label="numbers")
    button.click(
        handler(images.run, images.RUN_OUTPUTS), [image, layer, head, model],
        outputs_for(out, images.RUN_OUTPUTS), api_name="classify_image",
    )
    flow_button.click(
        handler(images.flow, images.FLOW_OUTPUTS), [out["state"]], outputs_for(out, images.FLOW_OUTPUTS),
        api_visibility="private",
    )
    for control in (layer, head):
        control.input(
            handler(images.redraw, images.REDRAW_OUTPUTS), [out["state"], layer, head],
            outputs_for(out, images.REDRAW_OUTPUTS), api_visibility="private",
        )


with gr.Blocks(title="attn-demos · image patches") as demo:
    build()

if __name__ == "__main__":
    demo.launch()
