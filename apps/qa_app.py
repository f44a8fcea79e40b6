"""Question answering: the answer, and the context as the answer (or question) attends to it."""

import gradio as gr

from attn_demos.render.panels import qa
from attn_demos.tasks.examples import load_examples

from wiring import RESULT_TTL_SECONDS, handler, model_box, outputs_for


def build() -> None:
    model = model_box("answer")
    rows = load_examples("answer")
    question = gr.Textbox(label="Question", value=rows[0]["question"], elem_id="answer-question")
    context = gr.Textbox(label="Context", lines=4, value=rows[0]["context"], elem_id="answer-context")
    gr.Examples([[r["question"], r["context"]] for r in rows], [question, context])
    with gr.Row():
        layer = gr.Dropdown(["mean"], value="mean", label="Layer", elem_id="answer-layer")
        head = gr.Dropdown(["mean", "max", "min", "rollout"], value="mean", label="Head", elem_id="answer-head")
        attend_from = gr.Radio(["answer", "question"], value="answer", label="Attention from")
    button = gr.Button("Answer", variant="primary", elem_id="answer-run")
    out = {
        "state": gr.State(time_to_live=RESULT_TTL_SECONDS),
        "status": gr.Markdown(elem_id="answer-status"),
        "answer": gr.Markdown(elem_id="answer-answer"),
        "badge": gr.Markdown(elem_id="answer-badge"),
        "highlight": gr.HTML(elem_id="answer-highlight"),
        "heatmap": gr.Image(label="self-attention", type="pil", elem_id="answer-heatmap"),
        "layers": layer,
        "heads": head,
    }
    with gr.Accordion("Export", open=False):
        out["png"] = gr.File(label="PNG")
        out["json"] = gr.File(label="JSON (the numbers on screen)")
        out["numbers"] = gr.JSON(label="numbers")
    button.click(
        handler(qa.run, qa.RUN_OUTPUTS), [question, context, layer, head, attend_from, model],
        outputs_for(out, qa.RUN_OUTPUTS), api_name="answer",
    )
    for control in (layer, head, attend_from):
        control.input(
            handler(qa.redraw, qa.REDRAW_OUTPUTS), [out["state"], layer, head, attend_from],
            outputs_for(out, qa.REDRAW_OUTPUTS), api_visibility="private",
        )


with gr.Blocks(title="attn-demos · question answering") as demo:
    build()

if __name__ == "__main__":
    demo.launch()
