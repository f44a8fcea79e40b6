"""The Gradio glue every tab shares: handlers into event functions, the model line, the Layer and
Head controls, the status and badge lines, the Export accordion, and attention flow with progress."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from concurrent.futures import ThreadPoolExecutor

import gradio as gr

from attn_demos.tasks.registry import attention_shape, model_status
from attn_demos.ui.common import Choices, error_text, user_models_allowed

RESULT_TTL_SECONDS = 900  # a visitor's last result (kept for re-drawing) is dropped after 15 minutes
CONTROL_OUTPUTS = ("layers", "heads", "targets", "flow_tokens")  # left as they are when a run fails
PROGRESS_TICK_S = 0.25
FLOW_WORKERS = 1  # flows run one at a time: a stopped flow finishes in the background, never piles up

_flow_pool = ThreadPoolExecutor(max_workers=FLOW_WORKERS, thread_name_prefix="attn-flow")


def handler(function, outputs: tuple[str, ...]):
    """A Gradio event function: handler dict -> tuple in `outputs` order.

    Choices become dropdown updates; a control the handler did not set (a failed run) keeps its
    value (gr.skip), every other missing output is cleared (None).
    """

    @functools.wraps(function)  # API clients see the handler's parameter names
    def wrapped(*args):
        values = call_safely(function, *args)
        return _in_order(values, outputs)

    return wrapped


def call_safely(function, *args) -> dict:
    """The handler's dict, or {"status": "⚠️ …"} if it raised."""
    try:
        return function(*args)
    except Exception as error:  # the tab shows it; the app stays up
        return {"status": error_text(error)}


def _in_order(values: dict, outputs: tuple[str, ...]):
    ordered = tuple(_component_value(name, values) for name in outputs)
    return ordered[0] if len(ordered) == 1 else ordered  # Gradio takes one output bare


def _component_value(name: str, values: dict):
    if name not in values:
        return gr.skip() if name in CONTROL_OUTPUTS else None
    value = values[name]
    return gr.Dropdown(choices=value.options, value=value.selected) if isinstance(value, Choices) else value


def outputs_for(components: dict, names: tuple[str, ...]) -> list:
    return [components[name] for name in names]


# ---------------------------------------------------------------- layout pieces


def model_box(task: str):
    """The model line at the top of a tab (the only place the model is named) and the override box.

    Returns (usable, override textbox): usable is False when the configured model cannot load and
    visitors may not name another one; the tab then disables its button.
    """
    ok, message = model_status(task)
    gr.Markdown(message, elem_id=f"{task}-model", elem_classes=["model-status"] + ([] if ok else ["model-error"]))
    override = gr.Textbox(
        label="Model (Hub id or local folder; empty = the configured one)", visible=user_models_allowed(), value=""
    )
    return ok or user_models_allowed(), override


def layer_head_controls(task: str, prefix: str, layer_value="mean", with_rollout: bool = False):
    """Layer and Head dropdowns whose choices come from the configured model's config, so any
    valid layer is accepted before a first run; other values reach the handler, which checks them."""
    shape = attention_shape(task)
    layers, heads = shape if shape else (0, 0)
    head_options = ["mean", "max", "min"] + list(range(heads)) + (["rollout"] if with_rollout else [])
    layer = gr.Dropdown(
        ["mean"] + list(range(layers)), value=layer_value if layers else "mean",
        label="Layer", elem_id=f"{prefix}-layer", allow_custom_value=True,
    )
    head = gr.Dropdown(head_options, value="mean", label="Head", elem_id=f"{prefix}-head", allow_custom_value=True)
    if with_rollout:  # rollout runs through every layer: the Layer control has no say then
        head.change(lambda h: gr.Dropdown(interactive=h != "rollout"), [head], [layer], queue=False, api_visibility="private")
    return layer, head


def status_line(prefix: str):
    return gr.Markdown(label="status", show_label=False, elem_id=f"{prefix}-status")


def badge_line(prefix: str):
    return gr.Markdown(label="badge", show_label=False, elem_id=f"{prefix}-badge")


def html_output(name: str, prefix: str):
    return gr.HTML(label=name, elem_id=f"{prefix}-{name}")


def numbers_preview_output(prefix: str):
    return gr.JSON(label="numbers", elem_id=f"{prefix}-numbers")


def export_accordion(prefix: str, out: dict):
    """The Export accordion: a short numbers preview, and files written only when asked."""
    with gr.Accordion("Export", open=False, elem_id=f"{prefix}-export-accordion"):
        out["numbers"] = numbers_preview_output(prefix)
        button = gr.Button("Export PNG and JSON (every number)", elem_id=f"{prefix}-export")
        with gr.Row():
            out["png"] = gr.File(label="png", elem_id=f"{prefix}-png")
            out["json"] = gr.File(label="json", elem_id=f"{prefix}-json")
    return button


def run_on_click_and_enter(button, enter_boxes: list, usable: bool, function, inputs: list, outputs: list, api_name: str):
    """One event (one API endpoint) for the button and for Enter in the one-line boxes; while the
    tab's model cannot load, Enter does nothing, like the disabled button."""
    triggers = [button.click] + ([box.submit for box in enter_boxes] if usable else [])
    return gr.on(triggers, function, inputs, outputs, api_name=api_name)


def run_example_on_click(examples: gr.Examples | None, usable: bool, function, inputs: list, outputs: list):
    """Clicking an example fills the inputs, then runs them with the controls as they are."""
    if examples is not None and usable:
        examples.load_input_event.then(function, inputs, outputs, api_visibility="private")


# ---------------------------------------------------------------- attention flow


def flow_handler(function, outputs: tuple[str, ...], estimate):
    """An async Gradio function: `function` runs in the flow worker while a progress bar moves
    against `estimate(*args)` seconds; Stop (cancels=) ends the wait at once (a flow already
    computing finishes in the background: core/flow.py has no stop hook)."""

    async def wrapped(*args):
        *args, progress = args  # Gradio passes its tracker where the signature below puts it
        seconds = max(estimate(*args) or 1.0, 0.1)
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(_flow_pool, call_safely, function, *args)
        while not future.done():
            elapsed = time.monotonic() - started
            left = max(seconds - elapsed, 0)
            progress(min(elapsed / seconds, 0.99), desc=f"attention flow: about {left:.0f} s left (estimate)")
            await asyncio.wait([future], timeout=PROGRESS_TICK_S)
        return _in_order(future.result(), outputs)

    parameters = list(inspect.signature(function).parameters.values())
    tracker = inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())
    wrapped.__signature__ = inspect.Signature([*parameters, tracker])
    wrapped.__name__ = function.__name__
    return wrapped
