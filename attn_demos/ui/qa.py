"""Question answering tab: the answer span and score, the context highlighted by the attention
from the answer (or the question), and the full heatmap."""

from __future__ import annotations

import gradio as gr

from attn_demos.core.pooling import display_tokens
from attn_demos.render.heatmap import heatmap_image
from attn_demos.render.interactive import answer_span_html, heatmap_html, parse_selection
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.examples import load_examples
from attn_demos.tasks.qa import QAResult
from attn_demos.tasks.qa import answer as answer_question
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
    plain_markdown,
    status_text,
    user_model,
)

TAB = "answer"
PICK_ID = "answer-pick"  # the hidden textbox that receives clicks on the grid, the heatmap, the head and neuron views
DEFAULT_LAYER = "mean"
HEATMAP_DECIMALS = 6  # as the Explorer: a cell on the page matches the neuron view to 1e-6
REDRAW_OUTPUTS = ("status", "badge", "highlight", "heatmap", "numbers", "png", "json", "grid", "neuron", "selection")
RUN_OUTPUTS = ("state", "inputs", "answer", "layers", "heads", "chosen_row", "head_view") + REDRAW_OUTPUTS
PICK_OUTPUTS = ("layers", "heads", "chosen_row") + REDRAW_OUTPUTS
EXPORT_OUTPUTS = ("status", "png", "json")
NEURON_HINT = "Click a row of the heatmap (or a query token of the head view) for its neuron view."
ROLLOUT_HINT = "Rollout runs through every layer: choose a Head other than rollout for the neuron view."


def answer(question: str, context: str, layer, head, attend_from: str, model: str | None = None) -> dict:
    """Find the answer, then draw the chosen view of the pass that found it."""
    named = user_model(model)
    result = answer_question(question, context, source=named)
    shown_layer, shown_head = _layer_head(layer, head)
    return {
        **redraw(result, layer, head, attend_from),
        "chosen_row": None,  # nobody clicked a row yet
        "head_view": linked.head_view(
            TAB, result.shown, result.tokens, None, shown_layer, shown_head, target_id=PICK_ID,
            title="head view: hover a token for its lines; click to keep it (and inspect it)",
        ),
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


def redraw(result: QAResult | None, layer, head, attend_from: str = "answer", query=None) -> dict:
    """Another layer/head of the same pass; `query` (a row someone clicked, or None) is marked and
    gets its neuron view."""
    if result is None:
        return {"status": "Type a question and a context, then press Answer."}
    layer, head = _layer_head(layer, head)
    attend_from = _attend_from(attend_from)
    context_tokens, scores = result.context_scores(attend_from, layer, head)  # (C,)
    view = result.view(layer, head)
    chosen = _query(query, len(result.tokens))
    return {
        "status": status_text(view.notices),
        "badge": view.check_badge,
        "highlight": context_html(result, context_tokens, scores, f"context, as the {attend_from} attends to it"),
        "heatmap": heatmap_html(
            view.matrix, view.query_labels, view.key_labels, view.title, chosen_query=chosen, target_id=PICK_ID,
            marked_rows=[i for i in result.answer_index if i < len(view.query_labels)], decimals=HEATMAP_DECIMALS,
        ),
        "numbers": {**numbers_preview(view), "context_tokens": len(context_tokens)},
        "grid": linked.grid(
            result.shown, layer, head, target_id=PICK_ID,
            title=f"all {result.num_layers} layers × {result.num_heads} heads (click one to show it)",
        ),
        "neuron": neuron_view(result, layer, head, chosen),
        "selection": linked.selection(TAB, layer, head, chosen),
    }


def pick(selection: str, result: QAResult | None, layer, head, attend_from: str = "answer", query=None) -> dict:
    """A click on the grid or in the neuron view's selects (shows that layer and head), on a heatmap
    row or a query token of the head view (selects that row: its neuron view)."""
    chosen = parse_selection(selection)
    if result is None or chosen is None:
        return {}
    if chosen["view"] in ("grid", "neuron"):
        layer, head = int(chosen["layer"]), int(chosen["head"])
        query = chosen.get("query", query)
        return {
            **redraw(result, layer, head, attend_from, query),
            "layers": layer_choices(result.num_layers, layer),
            "heads": head_choices_for(result.head_options(), head),
            "chosen_row": _query(query, len(result.tokens)),
        }
    if chosen["view"] not in ("heatmap", "head"):
        return {}
    query = _query(chosen["query"], len(result.tokens))
    return {**redraw(result, layer, head, attend_from, query), "chosen_row": query}


def neuron_view(result: QAResult, layer, head, query: int | None) -> str:
    """The neuron view of row `query` (linked.neuron), or a line saying what it needs."""
    if head == "rollout" or query is None:
        return f'<div class="attn-note">{ROLLOUT_HINT if head == "rollout" else NEURON_HINT}</div>'
    label = display_tokens(result.tokens)[query]
    return linked.neuron(result.neuron, result.shown, result.tokens, layer, head, query, label, PICK_ID)


def _query(value, length: int) -> int | None:
    """A row index from a click or the kept selection, or None when blank or out of range."""
    try:
        index = int(value)
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < length else None


def context_html(result: QAResult, context_tokens: list[str], scores, title: str) -> str:
    """The context shaded by attention, the answer outlined (plain shading when no answer lies in it)."""
    inside = [result.context_index.index(i) for i in result.answer_index if i in result.context_index]
    if not result.answer or not inside:
        return highlight_html(context_tokens, scores, title=title)
    return answer_span_html(context_tokens, scores, inside[0], inside[-1], title=f"{title} (answer outlined)")


def export(result: QAResult | None, inputs: dict | None, layer, head, attend_from: str = "answer", query=None) -> dict:
    """Write the shown view as answer-layerL-headH.png/.json, with the answer and the context scores."""
    if result is None:
        return {"status": "Run the model first (Answer)."}
    layer, head = _layer_head(layer, head)
    attend_from = _attend_from(attend_from)
    context_tokens, scores = result.context_scores(attend_from, layer, head)  # (C,)
    view = result.view(layer, head)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    inputs = inputs or {}
    index = _query(query, len(view.query_labels))  # as the page shows it: None until a row is clicked
    payload = export_payload(
        TAB, result.model, layer, head, view, input_text={"question": inputs.get("question"), "context": inputs.get("context")},
        chosen_token=None if index is None else {"index": index, "token": view.query_labels[index]}, attend_from=attend_from, answer=result.answer, score=result.score,
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
        "chosen_row": gr.State(None),  # the row a person clicked (None until one is)
        "selection": linked.selection_box(TAB),
    }
    picked = wiring.pick_box(PICK_ID)
    with gr.Accordion("Every layer × head, and the head view", open=True, elem_id="answer-views-accordion"):
        out["grid"] = wiring.html_output("grid", "answer")
        out["head_view"] = wiring.html_output("head-view", "answer")
    with gr.Accordion("Neuron view (how one weight is made from q and k)", open=False, elem_id="answer-neuron-accordion"):
        out["neuron"] = wiring.html_output("neuron", "answer")
    export_button = wiring.export_accordion("answer", out)

    run_inputs = [question, context, layer, head, attend_from, model]
    run_handler, run_outputs = wiring.handler(answer, RUN_OUTPUTS), wiring.outputs_for(out, RUN_OUTPUTS)
    wiring.run_on_click_and_enter(button, [question, context], usable, run_handler, run_inputs, run_outputs, "answer", results)
    wiring.run_example_on_click(examples, usable, run_handler, run_inputs, run_outputs, results)
    results.view_on(
        export_button.click, wiring.handler(export, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, attend_from, out["chosen_row"]],
        wiring.outputs_for(out, EXPORT_OUTPUTS), what="export", api_name="answer_export",
    )
    view_inputs = [out["state"], layer, head, attend_from, out["chosen_row"]]
    results.redraw_on(
        [layer, head, attend_from], wiring.handler(redraw, REDRAW_OUTPUTS), view_inputs, wiring.outputs_for(out, REDRAW_OUTPUTS),
    )
    results.view_on(
        picked.change, wiring.handler(pick, PICK_OUTPUTS, keep_missing=True), [picked] + view_inputs,
        wiring.outputs_for(out, PICK_OUTPUTS), draws=True,
    )
