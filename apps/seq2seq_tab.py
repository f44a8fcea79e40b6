"""The layout shared by Translation and Summarization."""

import gradio as gr

from attn_demos.render.panels import seq2seq

from wiring import RESULT_TTL_SECONDS, handler, model_box, outputs_for


def build(task: str, run, api_name: str, input_label: str, default_text: str, examples: list[str], button_text: str):
    prefix = api_name
    model = model_box(task)
    text = gr.Textbox(label=input_label, lines=4 if task == "summarize" else 2, value=default_text, elem_id=f"{prefix}-text")
    gr.Examples([[e] for e in examples], [text])
    with gr.Row():
        layer = gr.Dropdown(["mean"], value="mean", label="Layer", elem_id=f"{prefix}-layer")
        head = gr.Dropdown(["mean", "max", "min"], value="mean", label="Head", elem_id=f"{prefix}-head")
        beams = gr.Slider(1, 6, value=4, step=1, label="Beams")
        words = gr.Checkbox(label="Merge word pieces into words", value=False)
    button = gr.Button(button_text, variant="primary", elem_id=f"{prefix}-run")
    out = {
        "state": gr.State(time_to_live=RESULT_TTL_SECONDS),
        "status": gr.Markdown(elem_id=f"{prefix}-status"),
        "output": gr.Textbox(label="Output", interactive=False, elem_id=f"{prefix}-output"),
        "badge": gr.Markdown(elem_id=f"{prefix}-badge"),
        "heatmap": gr.Image(label="cross-attention: output tokens (rows) × source tokens", type="pil", elem_id=f"{prefix}-heatmap"),
        "layers": layer,
        "heads": head,
    }
    target = gr.Dropdown([], label="Output token to inspect", elem_id=f"{prefix}-target")
    out["targets"] = target
    out["highlight"] = gr.HTML(elem_id=f"{prefix}-highlight")
    out["coverage"] = gr.HTML(elem_id=f"{prefix}-coverage")
    with gr.Accordion("Export", open=False):
        out["png"] = gr.File(label="PNG")
        out["json"] = gr.File(label="JSON (the numbers on screen)")
        out["numbers"] = gr.JSON(label="numbers")
    button.click(
        handler(run, seq2seq.RUN_OUTPUTS), [text, layer, head, words, beams, model],
        outputs_for(out, seq2seq.RUN_OUTPUTS), api_name=api_name,
    )
    for control in (layer, head, words, target):
        control.input(
            handler(seq2seq.redraw, seq2seq.REDRAW_OUTPUTS), [out["state"], layer, head, words, target],
            outputs_for(out, seq2seq.REDRAW_OUTPUTS), api_visibility="private",
        )
