"""Basics: the attention formula on a query, keys and values you can edit."""

import gradio as gr

from attn_demos.render.panels import basics
from attn_demos.tasks.basics import SEED_KEY, SEED_QUERY, SEED_VALUE

from wiring import handler, outputs_for


def build() -> None:
    gr.Markdown("`softmax(q·kᵀ/√d_k)·v`, step by step, computed by the torch core and the numpy core.")
    with gr.Row():
        query = gr.Textbox(label="query q", value=str(SEED_QUERY), elem_id="basics-query")
        key = gr.Textbox(label="key k", value=str(SEED_KEY), elem_id="basics-key")
        value = gr.Textbox(label="value v", value=str(SEED_VALUE), elem_id="basics-value")
    button = gr.Button("Compute", variant="primary", elem_id="basics-run")
    seed = basics.run(str(SEED_QUERY), str(SEED_KEY), str(SEED_VALUE))  # shown before the first click
    out = {
        "status": gr.Markdown(seed["status"], elem_id="basics-status"),
        "steps": gr.Markdown(seed["steps"], elem_id="basics-steps"),
        "heatmap": gr.Image(seed["heatmap"], label="weights", type="pil", elem_id="basics-heatmap"),
    }
    with gr.Accordion("Numbers (JSON)", open=False):
        out["numbers"] = gr.JSON(seed["numbers"], label="numbers", elem_id="basics-numbers")
    button.click(
        handler(basics.run, basics.OUTPUTS), [query, key, value], outputs_for(out, basics.OUTPUTS), api_name="basics"
    )


with gr.Blocks(title="attn-demos · basics") as demo:
    build()

if __name__ == "__main__":
    demo.launch()
