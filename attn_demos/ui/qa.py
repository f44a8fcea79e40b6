"""Question answering tab: the answer span and score, the context highlighted by the attention
from the answer (or the question), and the full heatmap."""

from __future__ import annotations

import gradio as gr

from attn_demos.core.pooling import display_tokens
from attn_demos.render.heatmap import heatmap_image
from attn_demos.render.interactive import answer_span_html, heatmap_html
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.examples import load_examples
from attn_demos.tasks.qa import QAResult
from attn_demos.tasks.qa import answer as answer_question
from attn_demos.ui import wiring
from attn_demos.ui.common import (
    export_files,
    export_name,
    export_payload,
    head_choices_for,
    layer_choices,
    numbers_preview,
    parse_head_or_default,
    parse_layer,
    plain_markdown,
    status_text,
    user_model,
)

TAB = "answer"
DEFAULT_LAYER = "mean"
REDRAW_OUTPUTS = ("status", "badge", "highlight", "heatmap", "numbers", "png", "json")
RUN_OUTPUTS = ("state", "inputs", "answer", "layers", "heads") + REDRAW_OUTPUTS
EXPORT_OUTPUTS = ("status", "png", "json")


def answer(question: str, context: str, layer, head, attend_from: str, model: str | None = None) -> dict:
    """Find the answer, then draw the chosen view of the pass that found it."""
    named = user_model(model)
    result = answer_question(question, context, source=named)
    return {
        **redraw(result, layer, head, attend_from),
        "status": status_text(result.notices, result.model if named else None),
        "state": result,
        "inputs": {"question": question, "context": context, "model": named},
        "answer": answer_text(result),
        "layers": layer_choices(result.num_layers, parse_layer(layer, DEFAULT_LAYER)),
        "heads": head_choices_for(result.head_options(), parse_head_or_default(head)),
    }


def answer_text(result: QAResult) -> str:
    if not result.answer:
        return "No answer found in the context."
    return f"**{plain_markdown(result.answer)}** (score {result.score:.1%})"  # the answer is the visitor's text


def redraw(result: QAResult | None, layer, head, attend_from: str = "answer") -> dict:
    if result is None:
        return {"status": "Type a question and a context, then press Answer."}
    layer, head = _layer_head(layer, head)
    attend_from = _attend_from(attend_from)
    context_tokens, scores = result.context_scores(attend_from, layer, head)  # (C,)
    view = result.view(layer, head)
    return {
        "status": status_text(view.notices),
        "badge": view.check_badge,
        "highlight": context_html(result, context_tokens, scores, f"context, as the {attend_from} attends to it"),
        "heatmap": heatmap_html(
            view.matrix, view.query_labels, view.key_labels, view.title,
            marked_rows=[i for i in result.answer_index if i < len(view.query_labels)],
        ),
        "numbers": {**numbers_preview(view), "context_tokens": len(context_tokens)},
    }


def context_html(result: QAResult, context_tokens: list[str], scores, title: str) -> str:
    """The context shaded by attention, the answer outlined (plain shading when no answer lies in it)."""
    inside = [result.context_index.index(i) for i in result.answer_index if i in result.context_index]
    if not result.answer or not inside:
        return highlight_html(context_tokens, scores, title=title)
    return answer_span_html(context_tokens, scores, inside[0], inside[-1], title=f"{title} (answer outlined)")


def export(result: QAResult | None, inputs: dict | None, layer, head, attend_from: str = "answer") -> dict:
    """Write the shown view as answer-layerL-headH.png/.json, with the answer and the context scores."""
    if result is None:
        return {"status": "Run the model first (Answer)."}
    layer, head = _layer_head(layer, head)
    attend_from = _attend_from(attend_from)
    context_tokens, scores = result.context_scores(attend_from, layer, head)  # (C,)
    view = result.view(layer, head)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    inputs = inputs or {}
    payload = export_payload(
        TAB, result.model, layer, head, view, input_text={"question": inputs.get("question"), "context": inputs.get("context")},
        chosen_token=None, attend_from=attend_from, answer=result.answer, score=result.score,
        context_tokens=display_tokens(context_tokens), context_pieces=context_tokens, context_scores=scores.tolist(),
    )
    return {"status": "Exported.", **export_files(export_name(TAB, layer, head), picture, payload)}


def _layer_head(layer, head):
    head = parse_head_or_default(head)
    layer = 0 if head == "rollout" else parse_layer(layer, DEFAULT_LAYER)
    return layer, head


def _attend_from(value) -> str:
    return "question" if value == "question" else "answer"


def build() -> None:
    usable, model = wiring.model_box(TAB)
    rows = load_examples(TAB)
    question = gr.Textbox(label="Question", value=rows[0]["question"], elem_id="answer-question")
    context = gr.Textbox(
        label="Context (Shift+Enter runs)", lines=4, value=rows[0]["context"], elem_id="answer-context"
    )
    examples = gr.Examples([[r["question"], r["context"]] for r in rows], [question, context], cache_examples=False)
    with gr.Row():
        layer, head = wiring.layer_head_controls(TAB, "answer", with_rollout=True)
        attend_from = gr.Radio(["answer", "question"], value="answer", label="Attention from")
    button = gr.Button("Answer", variant="primary", elem_id="answer-run", interactive=usable)
    results = wiring.Results(TAB)
    out = {
        "state": results.state,
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line("answer"),
        "answer": gr.Markdown(label="answer", show_label=False, elem_id="answer-answer"),
        "badge": wiring.badge_line("answer"),
        "highlight": wiring.html_output("highlight", "answer"),
        "heatmap": wiring.html_output("heatmap", "answer"),
        "layers": layer,
        "heads": head,
    }
    export_button = wiring.export_accordion("answer", out)

    run_inputs = [question, context, layer, head, attend_from, model]
    run_handler, run_outputs = wiring.handler(answer, RUN_OUTPUTS), wiring.outputs_for(out, RUN_OUTPUTS)
    wiring.run_on_click_and_enter(button, [question, context], usable, run_handler, run_inputs, run_outputs, "answer", results)
    wiring.run_example_on_click(examples, usable, run_handler, run_inputs, run_outputs, results)
    results.view_on(
        export_button.click, wiring.handler(export, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, attend_from],
        wiring.outputs_for(out, EXPORT_OUTPUTS), what="export", api_name="answer_export",
    )
    results.redraw_on(
        [layer, head, attend_from], wiring.handler(redraw, REDRAW_OUTPUTS), [out["state"], layer, head, attend_from],
        wiring.outputs_for(out, REDRAW_OUTPUTS),
    )
