"""What the Translation and Summarization tabs share: the output, the alignment heatmap (output
tokens × source tokens), the source highlighted for one chosen output token, and coverage."""

from __future__ import annotations

import gradio as gr
import numpy as np

from attn_demos.render.heatmap import heatmap_image
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.seq2seq import Seq2SeqResult
from attn_demos.ui import wiring
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
)

DEFAULT_LAYER = "mean"
REDRAW_OUTPUTS = ("status", "badge", "heatmap", "highlight", "coverage", "numbers", "png", "json")
RUN_OUTPUTS = ("state", "inputs", "output", "layers", "heads", "targets") + REDRAW_OUTPUTS
EXPORT_OUTPUTS = ("status", "png", "json")


def run_result(result: Seq2SeqResult, inputs: dict, layer, head, words: bool) -> dict:
    """A fresh result on screen: the output, the first output token's view, new dropdown choices."""
    return {
        **redraw(result, layer, head, words, target=None),
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
    return Choices([(f"{i}: {token}", i) for i, token in enumerate(result.target_tokens)], 0)


def redraw(result: Seq2SeqResult | None, layer, head, words: bool, target=None) -> dict:
    """Another layer/head/output token of the same output, without running the model again."""
    if result is None:
        return {"status": "Type a text and press the button."}
    layer, head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    view = result.cross_view(layer, head, words)
    target = _target(target)
    scores = result.source_scores(target, layer, head)  # (S,)
    chosen = result.target_tokens[target]
    coverage = result.coverage(layer, head)  # (S,)
    return {
        "status": status_text(view.notices),
        "badge": view.check_badge,
        "heatmap": heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title),
        "highlight": highlight_html(result.source_tokens, scores, title=f"source attended by output token {target} “{chosen}”"),
        "coverage": highlight_html(result.source_tokens, coverage, title="coverage: total attention each source token received"),
        "numbers": {**numbers_preview(view), "coverage_first": np.round(coverage[:8], 4).tolist()},
    }


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
        output_text=result.output_text, chosen_token={"index": target, "token": result.target_tokens[target]},
        coverage=np.round(result.coverage(layer, head), 6).tolist(),
    )
    return {"status": "Exported.", **export_files(export_name(tab, layer, head), picture, payload)}


def _target(target) -> int:
    return 0 if target in (None, "") else int(target)


def build(task: str, run, input_label: str, default_text: str, examples: list[str], button_text: str) -> None:
    """The layout of a seq2seq tab; `run` is the tab's run handler, `task` its API name and prefix."""
    usable, model = wiring.model_box(task)
    one_line = task != "summarize"  # Enter runs a one-line box, Shift+Enter a longer one
    label = input_label if one_line else f"{input_label} (Shift+Enter runs)"
    text = gr.Textbox(label=label, lines=1 if one_line else 4, max_lines=8 if one_line else 20, value=default_text,
                      elem_id=f"{task}-text")
    example_rows = gr.Examples([[e] for e in examples], [text], cache_examples=False)
    with gr.Row():
        layer, head = wiring.layer_head_controls(task, task)
        beams = gr.Slider(1, 6, value=4, step=1, label="Beams")
        words = gr.Checkbox(label="Merge word pieces into words", value=False)
    button = gr.Button(button_text, variant="primary", elem_id=f"{task}-run", interactive=usable)
    out = {
        "state": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line(task),
        "output": gr.Textbox(label="output", interactive=False, elem_id=f"{task}-output"),
        "badge": wiring.badge_line(task),
        "heatmap": gr.Image(label="cross-attention: output tokens (rows) × source tokens", type="pil", elem_id=f"{task}-heatmap"),
        "layers": layer,
        "heads": head,
    }
    target = gr.Dropdown([], label="Output token to inspect", elem_id=f"{task}-target")
    out["targets"] = target
    out["highlight"] = wiring.html_output("highlight", task)
    out["coverage"] = wiring.html_output("coverage", task)
    export_button = wiring.export_accordion(task, out)

    run_inputs = [text, layer, head, words, beams, model]
    run_handler, run_outputs = wiring.handler(run, RUN_OUTPUTS), wiring.outputs_for(out, RUN_OUTPUTS)
    wiring.run_on_click_and_enter(button, [text], usable, run_handler, run_inputs, run_outputs, api_name=task)
    wiring.run_example_on_click(example_rows, usable, run_handler, run_inputs, run_outputs)

    def export_tab(result, inputs, layer, head, words, target):
        return export(task, result, inputs, layer, head, words, target)

    export_button.click(
        wiring.handler(export_tab, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, words, target],
        wiring.outputs_for(out, EXPORT_OUTPUTS), api_name=f"{task}_export",
    )
    for control in (layer, head, words, target):
        control.input(
            wiring.handler(redraw, REDRAW_OUTPUTS), [out["state"], layer, head, words, target],
            wiring.outputs_for(out, REDRAW_OUTPUTS), api_visibility="private",
        )
