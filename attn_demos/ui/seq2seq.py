"""The Translation and Summarization tabs (one layout, TABS says what differs): the output, the
alignment heatmap (output tokens × source tokens), the source highlighted for one chosen output
token, and coverage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import numpy as np

from attn_demos.core.pooling import display_tokens
from attn_demos.render.heatmap import heatmap_image
from attn_demos.render.interactive import heatmap_html, parse_selection
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.examples import load_examples
from attn_demos.tasks.seq2seq import Seq2SeqResult
from attn_demos.tasks.seq2seq import summarize as summarize_text
from attn_demos.tasks.seq2seq import translate as translate_text
from attn_demos.ui import linked, wiring
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
    token_choices,
    user_model,
)

DEFAULT_LAYER = "mean"
REDRAW_OUTPUTS = (
    "status", "badge", "heatmap", "highlight", "coverage", "numbers", "png", "json", "grid", "neuron", "selection",
)
RUN_OUTPUTS = ("state", "inputs", "output", "layers", "heads", "targets") + REDRAW_OUTPUTS + ("head_view",)
PICK_OUTPUTS = ("layers", "heads", "targets") + REDRAW_OUTPUTS
NEURON_OUTPUTS = ("status", "neuron")
HEATMAP_DECIMALS = 6  # as the Explorer: a cell on the page to 1e-6
WORDS_HINT = "Turn off “Merge word pieces” for the neuron view (its rows are output tokens)."
EXPORT_OUTPUTS = ("status", "png", "json")


@dataclass(frozen=True)
class Seq2SeqTab:
    """What a seq2seq tab has of its own; `key` is its API name and elem_id prefix."""

    key: str
    task: Callable[..., Seq2SeqResult]  # (text, source=, num_beams=) -> the result
    run: Callable[..., dict]  # its run handler: the API endpoint's parameters are its parameters
    input_label: str
    example_field: str  # the field of its examples file that holds the input
    button_text: str
    one_line: bool  # Enter runs a one-line box, Shift+Enter a longer one


def translate(text: str, layer, head, words: bool, num_beams: int = 4, model: str | None = None) -> dict:
    """Translate `text`, then draw the first output token's cross-attention."""
    return run("translate", text, layer, head, words, num_beams, model)


def summarize(article: str, layer, head, words: bool, num_beams: int = 4, model: str | None = None) -> dict:
    """Summarize `article`, then draw the first summary token's cross-attention."""
    return run("summarize", article, layer, head, words, num_beams, model)


TABS = {
    tab.key: tab
    for tab in (
        Seq2SeqTab("translate", translate_text, translate, "English text", "text", "Translate", one_line=True),
        Seq2SeqTab("summarize", summarize_text, summarize, "Article", "article", "Summarize", one_line=False),
    )
}


def run(task: str, text: str, layer, head, words: bool, num_beams: int = 4, model: str | None = None) -> dict:
    """Run tab `task`'s model on `text` along the winning beam, then draw the first output token."""
    named = user_model(model)
    result = TABS[task].task(text, source=named, num_beams=int(num_beams))
    return run_result(result, {"text": text, "model": named}, layer, head, words, task)


def pick_id(task: str) -> str:
    """elem_id of the tab's hidden textbox that receives clicks on the grid and the heatmap."""
    return f"{task}-pick"


def run_result(result: Seq2SeqResult, inputs: dict, layer, head, words: bool, task: str = "translate") -> dict:
    """A fresh result on screen: the output, the first output token's view, new dropdown choices."""
    shown_layer, shown_head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    return {
        **redraw(result, layer, head, words, target=None, task=task),
        "head_view": linked.head_view(
            task, result.cross_shown, result.target_tokens, result.source_tokens, shown_layer, shown_head,
            title="head view: output tokens (left) → source tokens (right); hover a token for its lines, click it to inspect it",
            target_id=pick_id(task),
        ),
        "status": status_text(result.notices, result.model if inputs.get("model") else None),
        "state": result,
        "inputs": inputs,
        "output": result.output_text,
        "layers": layer_choices(result.num_layers, parse_layer(layer, DEFAULT_LAYER)),
        "heads": head_choices_for(result.head_options(), parse_head_or_default(head)),
        "targets": target_choices(result),
    }


def target_choices(result: Seq2SeqResult) -> Choices:
    """(label, index) for each output token, for a dropdown; the first is selected."""
    return token_choices(result.target_tokens)


def redraw(result: Seq2SeqResult | None, layer, head, words: bool, target=None, task: str = "translate") -> dict:
    """Another layer/head/output token of the same output, without running the model again; the
    chosen output token is the heatmap's marked row (a click on a row chooses another)."""
    if result is None:
        return {"status": "Type a text and press the button."}
    layer, head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    view = result.cross_view(layer, head, words)
    target = _target(target)
    scores = result.source_scores(target, layer, head)  # (S,)
    chosen = display_tokens(result.target_tokens)[target]
    coverage = result.coverage(layer, head)  # (S,)
    chosen_row = target if not words and target < len(view.query_labels) else None
    return {
        "status": status_text(view.notices),
        "badge": view.check_badge,
        "heatmap": heatmap_html(
            view.matrix, view.query_labels, view.key_labels, view.title, target_id=pick_id(task),
            chosen_query=chosen_row, decimals=HEATMAP_DECIMALS,
        ),
        "grid": linked.grid(
            result.cross_shown, layer, head, target_id=pick_id(task),
            title=f"cross-attention, all {result.num_layers} layers × {result.num_heads} heads (click one to show it)",
        ),
        "selection": linked.selection(task, layer, head, chosen_row),
        "neuron": neuron_view(result, layer, head, target, words),
        "highlight": highlight_html(result.source_tokens, scores, title=f"source attended by output token {target} “{chosen}”"),
        "coverage": highlight_html(result.source_tokens, coverage, title="coverage: total attention each source token received"),
        "numbers": {**numbers_preview(view), "coverage_first": np.round(coverage[:8], 4).tolist()},
    }


def pick(task: str, selection: str, result: Seq2SeqResult | None, layer, head, words: bool, target=None) -> dict:
    """A click on the grid (shows that layer and head) or on a heatmap row (inspects that output token)."""
    chosen = parse_selection(selection)
    if result is None or chosen is None:
        return {}
    options = target_choices(result)
    if chosen["view"] in ("grid", "neuron"):  # another layer and head (the neuron view's selects keep its row)
        layer, head = int(chosen["layer"]), int(chosen["head"])
        target = chosen.get("query", target)
        return {
            **redraw(result, layer, head, words, target, task),
            "layers": layer_choices(result.num_layers, layer),
            "heads": head_choices_for(result.head_options(), head),
            "targets": Choices(options.options, _target(target)),
        }
    if chosen["view"] not in ("heatmap", "head") or words:  # merged rows are words, not output tokens
        return {}
    target = int(chosen["query"])
    return {**redraw(result, layer, head, words, target, task), "targets": Choices(options.options, target)}


def neuron(result: Seq2SeqResult | None, layer, head, target=None) -> dict:
    """The neuron view of one cross-attention cell: the output token's q, each source token's k,
    their products and sums, the scale, the softmax and the weight shown (on request)."""
    if result is None:
        return {"status": "Run the model first."}
    return {"status": "", "neuron": neuron_view(result, layer, head, target)}


def neuron_view(result: Seq2SeqResult, layer, head, target=None, words: bool = False) -> str:
    """The neuron view of output token `target` in the selected layer and head (linked.neuron: of
    the sharpest head when Head is a fusion); one teacher-forced pass."""
    if words:
        return f'<div class="attn-note">{WORDS_HINT}</div>'
    layer, head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    target = _target(target)
    label = display_tokens(result.target_tokens)[target]
    return linked.neuron(
        result.neuron, result.cross_shown, result.source_tokens, layer, head, target, label, pick_id(result.task),
        what="output token",
    )


def export(tab: str, result: Seq2SeqResult | None, inputs: dict | None, layer, head, words: bool, target=None) -> dict:
    """Write the shown view as <tab>-layerL-headH.png/.json, with the output and the chosen token."""
    if result is None:
        return {"status": "Run the model first."}
    layer, head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    view = result.cross_view(layer, head, words)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    target = _target(target)
    payload = export_payload(
        tab, result.model, layer, head, view, words=bool(words), input_text=(inputs or {}).get("text"),
        output_text=result.output_text, chosen_token={"index": target, "token": display_tokens(result.target_tokens)[target]},
        coverage=np.round(result.coverage(layer, head), 6).tolist(),
    )
    return {"status": "Exported.", **export_files(export_name(tab, layer, head), picture, payload)}


def _target(target) -> int:
    return 0 if target in (None, "") else int(target)


def build(task: str) -> None:
    """The layout of seq2seq tab `task` (a key of TABS)."""
    tab = TABS[task]
    examples = [row[tab.example_field] for row in load_examples(task)]
    usable, model = wiring.model_box(task)
    label = tab.input_label if tab.one_line else f"{tab.input_label} (Shift+Enter runs)"
    text = gr.Textbox(label=label, lines=1 if tab.one_line else 4, max_lines=8 if tab.one_line else 20,
                      value=examples[0], elem_id=f"{task}-text")
    example_rows = gr.Examples([[e] for e in examples], [text], cache_examples=False)
    with gr.Row():
        layer, head = wiring.layer_head_controls(task, task)
        beams = gr.Slider(1, 6, value=4, step=1, label="Beams")
        words = linked.words_checkbox()
    button = gr.Button(tab.button_text, variant="primary", elem_id=f"{task}-run", interactive=usable)
    results = wiring.Results(task)
    out = {
        "state": results.state,
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line(task),
        "output": gr.Textbox(label="output", interactive=False, elem_id=f"{task}-output"),
        "badge": wiring.badge_line(task),
        "heatmap": wiring.html_output("heatmap", task),
        "layers": layer,
        "heads": head,
        "selection": linked.selection_box(task),
    }
    target = gr.Dropdown([], label="Output token to inspect", elem_id=f"{task}-target")
    out["targets"] = target
    out["highlight"] = wiring.html_output("highlight", task)
    out["coverage"] = wiring.html_output("coverage", task)
    picked = wiring.pick_box(pick_id(task))
    with gr.Accordion("Every layer × head, and the head view", open=True, elem_id=f"{task}-views-accordion"):
        out["grid"] = wiring.html_output("grid", task)
        out["head_view"] = wiring.html_output("head-view", task)
    with gr.Accordion("Neuron view (how one cross-attention weight is made)", open=False, elem_id=f"{task}-neuron-accordion"):
        neuron_button = gr.Button("Show neuron view (output token chosen above)", elem_id=f"{task}-neuron-run")
        out["neuron"] = wiring.html_output("neuron", task)
    export_button = wiring.export_accordion(task, out)

    run_inputs = [text, layer, head, words, beams, model]
    run_handler, run_outputs = wiring.handler(tab.run, RUN_OUTPUTS), wiring.outputs_for(out, RUN_OUTPUTS)
    wiring.run_on_click_and_enter(button, [text], usable, run_handler, run_inputs, run_outputs, task, results)
    wiring.run_example_on_click(example_rows, usable, run_handler, run_inputs, run_outputs, results)

    def export_tab(result, inputs, layer, head, words, target):
        return export(task, result, inputs, layer, head, words, target)

    results.view_on(
        export_button.click, wiring.handler(export_tab, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, words, target],
        wiring.outputs_for(out, EXPORT_OUTPUTS), what="export", api_name=f"{task}_export",
    )

    def redraw_tab(result, layer, head, words, target):
        return redraw(result, layer, head, words, target, task)

    def pick_tab(selection, result, layer, head, words, target):
        return pick(task, selection, result, layer, head, words, target)

    view_inputs = [out["state"], layer, head, words, target]
    results.redraw_on(
        [layer, head, words, target], wiring.handler(redraw_tab, REDRAW_OUTPUTS), view_inputs,
        wiring.outputs_for(out, REDRAW_OUTPUTS),
    )
    results.view_on(
        picked.change, wiring.handler(pick_tab, PICK_OUTPUTS, keep_missing=True), [picked] + view_inputs,
        wiring.outputs_for(out, PICK_OUTPUTS), draws=True,
    )
    results.view_on(
        neuron_button.click, wiring.handler(neuron, NEURON_OUTPUTS), [out["state"], layer, head, target],
        wiring.outputs_for(out, NEURON_OUTPUTS), follows_controls=True, what="neuron view",
    )
