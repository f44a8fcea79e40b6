"""Explorer: any encoder's attention, layer by layer and head by head."""

import gradio as gr

from attn_demos.render.panels import explorer
from attn_demos.tasks.examples import load_examples

from wiring import RESULT_TTL_SECONDS, handler, model_box, outputs_for


def build() -> None:
    model = model_box("explore")
    text = gr.Textbox(
        label="Text", lines=2, elem_id="explore-text",
        value="The animal didn't cross the street because it was too tired.",
    )
    gr.Examples([[row["text"]] for row in load_examples("explore")], [text])
    with gr.Row():
        layer = gr.Dropdown(["mean"] + list(range(6)), value=0, label="Layer", elem_id="explore-layer")
        head = gr.Dropdown(["mean", "max", "min", "rollout"], value="mean", label="Head", elem_id="explore-head")
        words = gr.Checkbox(label="Merge word pieces into words", value=False)
    button = gr.Button("Show attention", variant="primary", elem_id="explore-run")
    out = {
        "state": gr.State(time_to_live=RESULT_TTL_SECONDS),
        "status": gr.Markdown(elem_id="explore-status"),
        "badge": gr.Markdown(elem_id="explore-badge"),
        "heatmap": gr.Image(label="attention (rows attend to columns)", type="pil", elem_id="explore-heatmap"),
        "received": gr.HTML(elem_id="explore-received"),
        "grid": gr.Image(label="every layer × head", type="pil", elem_id="explore-grid"),
        "layers": layer,
        "heads": head,
    }
    with gr.Accordion("Attention flow (max-flow through all layers; takes seconds)", open=False):
        out["flow_tokens"] = gr.Dropdown([], label="Flow into token", elem_id="explore-flow-token")
        flow_button = gr.Button("Compute flow", elem_id="explore-flow-run")
        out["flow"] = gr.HTML(elem_id="explore-flow")
    with gr.Accordion("Export", open=False):
        out["png"] = gr.File(label="PNG")
        out["json"] = gr.File(label="JSON (the numbers on screen)")
        out["numbers"] = gr.JSON(label="numbers", elem_id="explore-numbers")
    button.click(
        handler(explorer.run, explorer.RUN_OUTPUTS), [text, layer, head, words, model],
        outputs_for(out, explorer.RUN_OUTPUTS), api_name="explore",
    )
    flow_button.click(
        handler(explorer.flow, explorer.FLOW_OUTPUTS), [out["state"], out["flow_tokens"]],
        outputs_for(out, explorer.FLOW_OUTPUTS), api_visibility="private",
    )
    for control in (layer, head, words):
        control.input(
            handler(explorer.redraw, explorer.REDRAW_OUTPUTS), [out["state"], layer, head, words],
            outputs_for(out, explorer.REDRAW_OUTPUTS), api_visibility="private",
        )


with gr.Blocks(title="attn-demos · explorer") as demo:
    build()

if __name__ == "__main__":
    demo.launch()
