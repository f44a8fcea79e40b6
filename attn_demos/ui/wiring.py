"""The Gradio glue every tab shares: handlers into event functions, the model line, the Layer and
Head controls, the status and badge lines, the Export accordion, and attention flow with progress;
runs and views keep their order through run_order.Results (a view that finishes after a newer run
leaves the page alone)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gradio as gr

from attn_demos.tasks.registry import attention_shape, model_status
from attn_demos.ui import kept
from attn_demos.ui.common import Choices, error_text, user_models_allowed
from attn_demos.ui.run_order import RESULT_TTL_SECONDS, Results

__all__ = ["RESULT_TTL_SECONDS", "Results"]  # what the tabs use of run_order

CONTROL_OUTPUTS = ("layers", "heads", "targets", "flow_tokens", "query")  # left as they are when a run fails
PROGRESS_TICK_S = 0.25
# Two flows run at a time, one per visitor, so no visitor holds every worker; a stopped flow ends
# at its next max-flow.
FLOW_WORKERS = 2
ONE_FLOW_TEXT = "⚠️ Your attention flow is still running (one per visitor at a time): wait for it, or press Stop."
FLOW_STOPPED_TEXT = "The attention flow was stopped before it finished."

_flow_pool = ThreadPoolExecutor(max_workers=FLOW_WORKERS, thread_name_prefix="attn-flow")
_flows: dict[str, threading.Event] = {}  # visitor (Gradio session) -> the stop signal of their running flow
_flows_lock = threading.Lock()


def handler(function, outputs: tuple[str, ...], keep_missing: bool = False):
    """A Gradio event function: handler dict -> tuple in `outputs` order.

    Choices become dropdown updates; a control the handler did not set (a failed run) keeps its
    value (gr.skip), every other missing output is cleared (None), or kept too with keep_missing
    (a click in a view that selects nothing, or fails, leaves the page as it was).
    """

    @functools.wraps(function)  # API clients see the handler's parameter names
    def wrapped(*args):
        values = call_safely(function, *args)
        if values.get("state") is not None:  # a run's new result: counted against $ATTN_DEMOS_KEPT_MB
            kept.KEPT.keep(values["state"])
        return _in_order(values, outputs, keep_missing)

    return wrapped


def call_safely(function, *args) -> dict:
    """The handler's dict, or {"status": "⚠️ …"} if it raised or was given a result the app let go
    of (kept.py)."""
    def released() -> bool:
        return any(kept.is_released(arg) for arg in args)

    if not released():
        try:
            return function(*args)
        except Exception as error:  # the tab shows it; the app stays up
            if not released():  # else it was let go of while this view was drawing it
                return {"status": error_text(error)}
    return {"status": error_text(kept.ResultReleasedError(kept.released_text()))}


def _in_order(values: dict, outputs: tuple[str, ...], keep_missing: bool = False):
    ordered = tuple(_component_value(name, values, keep_missing) for name in outputs)
    return ordered[0] if len(ordered) == 1 else ordered  # Gradio takes one output bare


def _component_value(name: str, values: dict, keep_missing: bool = False):
    if name not in values:
        return gr.skip() if keep_missing or name in CONTROL_OUTPUTS else None
    value = values[name]
    return gr.Dropdown(choices=value.options, value=value.selected) if isinstance(value, Choices) else value


def outputs_for(components: dict, names: tuple[str, ...]) -> list:
    return [components[name] for name in names]


SESSION_STATES = ("state", "inputs", "chosen_row")  # gr.States a handler returns: kept per visitor, never in the API


def api_outputs(names: tuple[str, ...]) -> list[str]:
    """What an endpoint returns over the API, in order: the handler's outputs without its gr.States."""
    return [name for name in names if name not in SESSION_STATES]


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


def pick_box(elem_id: str):
    """The hidden textbox that the interactive views write their clicks into (JSON, see
    attn_demos.render.interactive); its .change event receives them."""
    return gr.Textbox(elem_id=elem_id, visible="hidden", label="selection")


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


def run_on_click_and_enter(
    button, enter_boxes: list, usable: bool, function, inputs: list, outputs: list, api_name: str,
    results: Results | None = None,
):
    """One event for the button and for Enter in the one-line boxes; while the tab's model cannot
    load, Enter does nothing, like the disabled button. A tab with `results` runs in order (see
    run_order.Results.run_on), and API clients get the `api_name` endpoint."""
    triggers = [button.click] + ([box.submit for box in enter_boxes] if usable else [])
    if results is None:
        return gr.on(triggers, function, inputs, outputs, api_name=api_name)
    return results.run_on(functools.partial(gr.on, triggers), function, inputs, outputs, api_name=api_name)


def run_example_on_click(examples: gr.Examples | None, usable: bool, function, inputs: list, outputs: list, results: Results):
    """Clicking an example fills the inputs, then runs them with the controls as they are."""
    if examples is not None and usable:
        results.run_on(examples.load_input_event.then, function, inputs, outputs)


# ---------------------------------------------------------------- attention flow


def flow_handler(function, outputs: tuple[str, ...], estimate):
    """An async Gradio function: `function` runs in the flow worker with `on_progress(done, total)`
    and `cancelled()`; a progress bar shows max-flows done (against `estimate(*args)` seconds until
    the first is done). Stop (cancels=) ends the wait at once, and a visitor who leaves the page
    (stop_flows_of) ends it too: either makes `cancelled()` true, so the computation stops between
    two max-flows and frees the worker. A visitor runs one flow at a time; a second is refused.
    Gradio's request and progress tracker come first: the inputs follow them (a request of None:
    no visitor, as in a direct call)."""

    async def flow(request: gr.Request, progress=gr.Progress(), *args):
        seconds = max(estimate(*args) or 1.0, 0.1)
        started = time.monotonic()
        stop = threading.Event()
        visitor = getattr(request, "session_hash", None)
        if not _claim(visitor, stop):
            return _in_order({"status": ONE_FLOW_TEXT}, outputs, keep_missing=True)  # the running one's view stays
        done = [0, 0]  # max-flows done, of how many (written by the worker)

        def on_progress(count: int, total: int) -> None:
            done[:] = [count, total]

        work = functools.partial(function, on_progress=on_progress, cancelled=stop.is_set)
        running = _flow_pool.submit(call_safely, work, *args)
        running.add_done_callback(lambda _: _release(visitor, stop))  # the worker is free: so is the visitor
        future = asyncio.wrap_future(running)
        try:
            while not future.done():
                count, total = done
                elapsed = time.monotonic() - started
                if total:
                    left = elapsed * (total - count) / max(count, 1)
                    progress(count / total, desc=f"attention flow: {count} of {total} max-flows, about {left:.0f} s left")
                else:
                    left = max(seconds - elapsed, 0)
                    progress(min(elapsed / seconds, 0.99), desc=f"attention flow: about {left:.0f} s left (estimate)")
                await asyncio.wait([future], timeout=PROGRESS_TICK_S)
        except asyncio.CancelledError:  # Stop: the worker sees cancelled() at its next max-flow
            stop.set()
            raise
        return _in_order({"status": FLOW_STOPPED_TEXT} if stop.is_set() else future.result(), outputs)

    flow.__name__ = function.__name__
    return flow


def stop_flows_of(request: gr.Request) -> None:
    """For demo.unload: the visitor closed the page (their session ended), so their attention flow
    stops at its next max-flow."""
    with _flows_lock:
        stop = _flows.get(request.session_hash)
    if stop is not None:
        stop.set()


def _claim(visitor: str | None, stop: threading.Event) -> bool:
    """Record `visitor`'s flow (by its stop signal); False if they have one running already."""
    if visitor is None:
        return True
    with _flows_lock:
        if visitor in _flows:
            return False
        _flows[visitor] = stop
        return True


def _release(visitor: str | None, stop: threading.Event) -> None:
    with _flows_lock:
        if visitor is not None and _flows.get(visitor) is stop:
            del _flows[visitor]
