"""Text generation tab: a prompt, its continuation by a decoder-only model (greedy or beam search),
and for each generated token the prompt and earlier tokens it attended to, with the live check."""

from __future__ import annotations

import gradio as gr

from attn_demos.core.pooling import display_tokens
from attn_demos.errors import BadInputError
from attn_demos.render.heatmap import heatmap_image
from attn_demos.render.interactive import heatmap_html, parse_selection
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.generation import DEFAULT_MAX_NEW_TOKENS, MAX_BEAMS, MAX_NEW_TOKENS_CAP, GenerationResult
from attn_demos.tasks.generation import generate as generate_text
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

TAB = "generate"
DEFAULT_LAYER = "mean"
DEFAULT_BEAMS = 1  # greedy
DEFAULT_PROMPT = "Why is the sky blue?"
EXAMPLE_PROMPTS = [
    "Why is the sky blue?",
    "Write one sentence about a cat that sat on a mat.",
    "The capital of France is",
]
PICK_ID = "generate-pick"  # the hidden textbox that receives clicks on the grid, the heatmap, the head and neuron views
HEATMAP_DECIMALS = 6  # as the Explorer: a cell on the page matches the neuron view to 1e-6
REDRAW_OUTPUTS = ("status", "badge", "heatmap", "highlight", "numbers", "png", "json", "grid", "neuron", "selection")
RUN_OUTPUTS = ("state", "inputs", "output", "layers", "heads", "targets", "head_view") + REDRAW_OUTPUTS
PICK_OUTPUTS = ("layers", "heads", "targets") + REDRAW_OUTPUTS
EXPORT_OUTPUTS = ("status", "png", "json")


def generate(prompt: str, layer, head, beams, max_new_tokens, model: str | None = None) -> dict:
    """Generate once, then draw the first generated token's view (the state keeps the result)."""
    named = user_model(model)
    num_beams = whole_number(beams, "beams", DEFAULT_BEAMS)
    new_tokens = whole_number(max_new_tokens, "max new tokens", DEFAULT_MAX_NEW_TOKENS)
    result = generate_text(prompt, source=named, num_beams=num_beams, max_new_tokens=new_tokens)
    shown_layer, shown_head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    return {
        **redraw(result, layer, head, target=None),
        "head_view": linked.head_view(
            TAB, result.generated, result.generated_tokens, result.key_tokens, shown_layer, shown_head, target_id=PICK_ID,
            title="head view: each generated token (left) → the prompt and earlier tokens it saw (right); click one to inspect it",
        ),
        "status": status_text(result.notices, result.model if named else None),
        "state": result,
        "inputs": {"prompt": prompt, "model": named, "num_beams": num_beams, "max_new_tokens": new_tokens},
        "output": result.output_text,
        "layers": layer_choices(result.num_layers, parse_layer(layer, DEFAULT_LAYER)),
        "heads": head_choices_for(result.head_options(), parse_head_or_default(head)),
        "targets": target_choices(result),
    }


def whole_number(value, what: str, default: int) -> int:
    """A slider's value -> int; blank means the default; 2.5 or "two" is refused in one line."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInputError(f"{what} must be a whole number, not {value!r}") from None
    if not number.is_integer():
        raise BadInputError(f"{what} must be a whole number, not {value!r}")
    return int(number)


def target_choices(result: GenerationResult) -> Choices:
    """(label, index) for each generated token, for a dropdown; the first is selected."""
    return token_choices(result.generated_tokens)


def redraw(result: GenerationResult | None, layer, head, target=None) -> dict:
    """Another layer/head/generated token of the same continuation, without generating again."""
    if result is None:
        return {"status": "Type a prompt and press Generate."}
    layer, head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    view = result.view(layer, head)
    index = _target(target)
    prompt = len(result.prompt_tokens)
    return {
        "status": status_text(view.notices),
        "badge": view.check_badge,
        "heatmap": heatmap_html(
            view.matrix, view.query_labels, view.key_labels, view.title, chosen_query=index, target_id=PICK_ID,
            decimals=HEATMAP_DECIMALS,
            visible_keys=[prompt + g for g in range(len(view.query_labels))],  # step g saw the prompt and g generated tokens
        ),
        "highlight": attended_html(result, index, layer, head),
        "numbers": {**numbers_preview(view), "chosen_token": chosen_token(result, index)},
        "grid": linked.grid(
            result.generated, layer, head, target_id=PICK_ID,
            title=f"all {result.num_layers} layers × {result.num_heads} heads (click one to show it)",
        ),
        "neuron": linked.neuron(
            result.neuron, result.generated, result.key_tokens, layer, head, index,
            display_tokens(result.generated_tokens)[index], PICK_ID, what="generated token",
        ),
        "selection": linked.selection(TAB, layer, head, index),
    }


def pick(selection: str, result: GenerationResult | None, layer, head, target=None) -> dict:
    """A click on the grid or in the neuron view's selects (that layer and head), on a heatmap row or
    a token on the head view's left (that generated token)."""
    chosen = parse_selection(selection)
    if result is None or chosen is None:
        return {}
    options = target_choices(result)
    if chosen["view"] in ("grid", "neuron"):
        layer, head = int(chosen["layer"]), int(chosen["head"])
        target = _target(chosen.get("query", target))
        return {
            **redraw(result, layer, head, target),
            "layers": layer_choices(result.num_layers, layer),
            "heads": head_choices_for(result.head_options(), head),
            "targets": Choices(options.options, target),
        }
    if chosen["view"] not in ("heatmap", "head"):
        return {}
    target = int(chosen["query"])
    return {**redraw(result, layer, head, target), "targets": Choices(options.options, target)}


def attended_html(result: GenerationResult, index: int, layer, head) -> str:
    """The prompt and the generated tokens before token `index`, shaded by the attention of the step
    that produced it (the only tokens that step could see)."""
    visible = len(result.prompt_tokens) + index  # the prompt and generated tokens 0 … index−1
    scores = result.token_scores(index, layer, head)[:visible]  # (P+index,)
    token = display_tokens(result.generated_tokens)[index]
    title = f"what generated token {index} “{token}” attended to (prompt and earlier tokens)"
    return highlight_html(result.key_tokens[:visible], scores, title=title)


def chosen_token(result: GenerationResult, index: int) -> dict:
    return {"index": index, "token": display_tokens(result.generated_tokens)[index]}


def export(result: GenerationResult | None, inputs: dict | None, layer, head, target=None) -> dict:
    """Write the shown view as generate-layerL-headH.png/.json, with the prompt, output and chosen token."""
    if result is None:
        return {"status": "Run the model first (Generate)."}
    layer, head = parse_layer(layer, DEFAULT_LAYER), parse_head_or_default(head)
    view = result.view(layer, head)
    index = _target(target)
    result.token_scores(index)  # an index outside the output is refused before anything is written
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    payload = export_payload(
        TAB, result.model, layer, head, view, words=False, input_text=(inputs or {}).get("prompt"),
        prompt_as_read=result.prompt, output_text=result.output_text, num_beams=result.num_beams,
        chosen_token=chosen_token(result, index),
    )
    return {"status": "Exported.", **export_files(export_name(TAB, layer, head), picture, payload)}


def _target(target) -> int:
    return 0 if target in (None, "") else int(target)


def build() -> None:
    usable, model = wiring.model_box(TAB)
    prompt = gr.Textbox(label="Prompt", lines=1, max_lines=8, value=DEFAULT_PROMPT, elem_id="generate-text")  # Enter runs
    examples = gr.Examples([[p] for p in EXAMPLE_PROMPTS], [prompt], cache_examples=False)
    with gr.Row():
        layer, head = wiring.layer_head_controls(TAB, TAB)
        beams = gr.Slider(1, MAX_BEAMS, value=DEFAULT_BEAMS, step=1, label="Beams (1 = greedy)", elem_id="generate-beams")
        new_tokens = gr.Slider(
            1, MAX_NEW_TOKENS_CAP, value=DEFAULT_MAX_NEW_TOKENS, step=1, label="Max new tokens",
            elem_id="generate-max-new-tokens",
        )
    button = gr.Button("Generate", variant="primary", elem_id="generate-run", interactive=usable)
    results = wiring.Results(TAB)
    out = {
        "state": results.state,
        "inputs": gr.State(time_to_live=wiring.RESULT_TTL_SECONDS),
        "status": wiring.status_line(TAB),
        "output": gr.Textbox(label="output", interactive=False, elem_id="generate-output"),
        "badge": wiring.badge_line(TAB),
        "targets": gr.Dropdown([], label="Generated token", elem_id="generate-target"),
        "highlight": wiring.html_output("highlight", TAB),
        "heatmap": wiring.html_output("heatmap", TAB),  # generated tokens (rows) × prompt and earlier tokens
        "layers": layer,
        "heads": head,
        "selection": linked.selection_box(TAB),
    }
    picked = wiring.pick_box(PICK_ID)
    with gr.Accordion("Every layer × head, and the head view", open=True, elem_id=f"{TAB}-views-accordion"):
        out["grid"] = wiring.html_output("grid", TAB)
        out["head_view"] = wiring.html_output("head-view", TAB)
    with gr.Accordion("Neuron view (how one weight is made from q and k)", open=False, elem_id=f"{TAB}-neuron-accordion"):
        out["neuron"] = wiring.html_output("neuron", TAB)
    export_button = wiring.export_accordion(TAB, out)

    run_inputs = [prompt, layer, head, beams, new_tokens, model]
    run_handler, run_outputs = wiring.handler(generate, RUN_OUTPUTS), wiring.outputs_for(out, RUN_OUTPUTS)
    wiring.run_on_click_and_enter(button, [prompt], usable, run_handler, run_inputs, run_outputs, TAB, results)
    wiring.run_example_on_click(examples, usable, run_handler, run_inputs, run_outputs, results)
    results.view_on(
        export_button.click, wiring.handler(export, EXPORT_OUTPUTS), [out["state"], out["inputs"], layer, head, out["targets"]],
        wiring.outputs_for(out, EXPORT_OUTPUTS), what="export", api_name=f"{TAB}_export",
    )
    view_inputs = [out["state"], layer, head, out["targets"]]
    results.redraw_on([layer, head, out["targets"]], wiring.handler(redraw, REDRAW_OUTPUTS), view_inputs, wiring.outputs_for(out, REDRAW_OUTPUTS))
    results.view_on(
        picked.change, wiring.handler(pick, PICK_OUTPUTS, keep_missing=True), [picked] + view_inputs,
        wiring.outputs_for(out, PICK_OUTPUTS), draws=True,
    )
