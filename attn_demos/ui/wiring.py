"""The Gradio glue every tab shares: handlers into event functions, the model line, the Layer and
Head controls, the status and badge lines, the Export accordion, attention flow with progress, and
the order of a visitor's runs and views (a view that finishes after a newer run leaves the page alone)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import gradio as gr

from attn_demos.tasks.registry import attention_shape, model_status
from attn_demos.ui.common import Choices, error_text, user_models_allowed

RESULT_TTL_SECONDS = 900  # a visitor's last result (kept for re-drawing) is dropped after 15 minutes
CONTROL_OUTPUTS = ("layers", "heads", "targets", "flow_tokens", "query")  # left as they are when a run fails
PROGRESS_TICK_S = 0.25
FLOW_WORKERS = 1  # flows run one at a time; a stopped flow ends at its next max-flow

_flow_pool = ThreadPoolExecutor(max_workers=FLOW_WORKERS, thread_name_prefix="attn-flow")


def handler(function, outputs: tuple[str, ...], keep_missing: bool = False):
    """A Gradio event function: handler dict -> tuple in `outputs` order.

    Choices become dropdown updates; a control the handler did not set (a failed run) keeps its
    value (gr.skip), every other missing output is cleared (None), or kept too with keep_missing
    (a click in a view that selects nothing, or fails, leaves the page as it was).
    """

    @functools.wraps(function)  # API clients see the handler's parameter names
    def wrapped(*args):
        values = call_safely(function, *args)
        return _in_order(values, outputs, keep_missing)

    return wrapped


def call_safely(function, *args) -> dict:
    """The handler's dict, or {"status": "⚠️ …"} if it raised."""
    try:
        return function(*args)
    except Exception as error:  # the tab shows it; the app stays up
        return {"status": error_text(error)}


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


def run_on_click_and_enter(button, enter_boxes: list, usable: bool, function, inputs: list, outputs: list, api_name: str):
    """One event (one API endpoint) for the button and for Enter in the one-line boxes; while the
    tab's model cannot load, Enter does nothing, like the disabled button. A run from the page that
    writes a result_state() lands only if no newer run of the visitor landed first (see RunLedger)."""
    triggers = [button.click] + ([box.submit for box in enter_boxes] if usable else [])
    function, inputs = _in_run_order(function, inputs, outputs)
    return gr.on(triggers, function, inputs, outputs, api_name=api_name)


def run_example_on_click(examples: gr.Examples | None, usable: bool, function, inputs: list, outputs: list):
    """Clicking an example fills the inputs, then runs them with the controls as they are."""
    if examples is not None and usable:
        function, inputs = _in_run_order(function, inputs, outputs)
        examples.load_input_event.then(function, inputs, outputs, api_visibility="private")


def on_result(listener, function, inputs: list, outputs: list, draws: bool = False, **event_args):
    """`listener(function, inputs, outputs, **event_args)` (e.g. `export_button.click`) for a view
    of the tab's last result, a result_state() among `inputs`: its outputs land only if that result
    is still the newest run's and no run landed while it was drawn; otherwise every output is left
    as it is (see RunLedger). Views that `draws` (the redraw, a pick) also give way to a later one
    that drew first, so the Layer and Head they set match the picture."""
    result_at = _result_positions(inputs)
    if len(result_at) != 1:
        raise ValueError(f"a view reads exactly one result_state(), found {len(result_at)}")
    guarded = _view_in_order(function, result_at[0], len(inputs), len(outputs), draws)
    return listener(guarded, [*inputs, _LEDGERS[inputs[result_at[0]]._id]], outputs, **event_args)


def redraw_on(controls: list, function, inputs: list, outputs: list):
    """One redraw event for a tab's view controls (their `.input`: a person's change, not a run's
    update), guarded like on_result as a drawing view: of redraws and picks in flight together,
    the one begun last wins. Changes made while a redraw is pending are kept: "always_last" asks
    the page to send the last one after it (Gradio's default, "once", dropped them and left the
    picture on another layer than the Layer control shows); the page does not always wait (a
    Dropdown selection fires `.input` twice at once), which the draw order makes harmless."""
    return on_result(
        functools.partial(gr.on, [control.input for control in controls]), function, inputs, outputs,
        draws=True, trigger_mode="always_last", api_visibility="private",
    )


# ---------------------------------------------------------------- the order of runs and views


class RunLedger:
    """One visitor's runs and views of one tab (a gr.State beside the tab's result keeps one per
    session), for the events its page sends; an API call always gets its own outputs.

    Gradio runs a visitor's events side by side (the queue's concurrency), so a redraw of the
    previous result, or an older run, can finish after a newer run and overwrite its page. Each
    run takes a ticket when it starts and lands only if no newer ticket has landed; a view lands
    only if the result it drew is the one the newest landed run left and no run landed meanwhile;
    a drawing view (redraw, pick) also takes a ticket and lands only if no later one drew first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued = 0  # tickets handed to runs so far
        self._newest_ticket = 0  # the newest ticket that landed
        self._landings = 0  # runs landed so far (views compare it before and after drawing)
        self._newest = None  # weakref to the result the last landed run left (None: none, or it failed)
        self._draws = 0  # tickets handed to drawing views so far
        self._drawn = 0  # the newest drawing view's ticket that changed the page

    def __deepcopy__(self, memo) -> RunLedger:
        return RunLedger()  # gr.State copies its default for each visitor: a fresh ledger

    def start_run(self) -> int:
        with self._lock:
            self._issued += 1
            return self._issued

    def land_run(self, ticket: int, result, ordered: bool = True) -> bool:
        """Whether run `ticket`'s outputs go out (always, unless `ordered` and a newer run landed);
        records `result`, which Gradio then keeps in the tab's state."""
        with self._lock:
            if ordered and ticket < self._newest_ticket:
                return False
            self._newest_ticket = max(self._newest_ticket, ticket)
            self._landings += 1
            self._newest = None if result is None else weakref.ref(result)
            return True

    def landed(self) -> int:
        return self._landings

    def start_draw(self) -> int:
        with self._lock:
            self._draws += 1
            return self._draws

    def shows(self, result, landed_before: int, draw: int | None = None, drew: bool = True) -> bool:
        """Whether a view of `result` begun when landed() was `landed_before` may go to the page; a
        drawing view gives its `draw` ticket (recorded when it `drew`, i.e. changed an output)."""
        with self._lock:
            newest = self._newest() if self._newest is not None else None
            if self._landings != landed_before or newest is not result:
                return False
            if draw is None:
                return True
            if draw < self._drawn:
                return False
            if drew:
                self._drawn = draw
            return True


_LEDGERS: weakref.WeakValueDictionary[int, gr.State] = weakref.WeakValueDictionary()  # a result_state()'s id -> its ledger's State (gone with its app)


def result_state() -> gr.State:
    """The gr.State that keeps a tab's last result for re-drawing (dropped after RESULT_TTL_SECONDS),
    with a RunLedger beside it that run_on_click_and_enter, run_example_on_click and on_result use."""
    state = gr.State(time_to_live=RESULT_TTL_SECONDS)
    _LEDGERS[state._id] = gr.State(RunLedger())
    return state


def _result_positions(components: list) -> list[int]:
    return [i for i, component in enumerate(components) if getattr(component, "_id", None) in _LEDGERS]


def _skipped(count: int):
    return gr.skip() if count == 1 else tuple(gr.skip() for _ in range(count))


def _from_page(event) -> bool:
    """Whether the page sent the event (a component triggered it), not an API client."""
    return event is not None and event.target is not None


def _with_ledger(guarded, function, at: int):
    """`guarded` with `function`'s parameters, and `ledger` (the extra State input) and `event`
    (Gradio's EventData: who triggered it) at position `at`, after the inputs and before what
    Gradio supplies itself (the flow's progress tracker)."""
    functools.update_wrapper(guarded, function)
    del guarded.__wrapped__  # Gradio reads the signature below, not the function's
    guarded.__annotations__ = {"event": gr.EventData}  # the type that makes Gradio pass it
    parameters = list(inspect.signature(function).parameters.values())
    added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for name in ("ledger", "event")]
    guarded.__signature__ = inspect.Signature([*parameters[:at], *added, *parameters[at:]])
    return guarded


def _without(args: tuple, at: int) -> tuple:
    return args[:at] + args[at + 2:]  # the ledger and the event


def _in_run_order(function, inputs: list, outputs: list):
    """(function, inputs) for a run: unchanged unless it writes a result_state(), then guarded."""
    written = _result_positions(outputs)
    if not written:
        return function, inputs
    result_at, ledger_at = written[0], len(inputs)

    def run_in_order(*args):
        ledger, event = args[ledger_at], args[ledger_at + 1]
        ticket = ledger.start_run()
        values = function(*_without(args, ledger_at))
        result = values[result_at] if len(outputs) > 1 else values
        return values if ledger.land_run(ticket, result, ordered=_from_page(event)) else _skipped(len(outputs))

    return _with_ledger(run_in_order, function, ledger_at), [*inputs, _LEDGERS[outputs[result_at]._id]]


def _view_in_order(function, result_at: int, ledger_at: int, output_count: int, draws: bool = False):
    def begin(args):
        ledger, event = args[ledger_at], args[ledger_at + 1]
        if not _from_page(event):
            return None
        return ledger, ledger.landed(), ledger.start_draw() if draws else None

    def lands(begun, result, values) -> bool:
        if begun is None:  # an API call: its own outputs
            return True
        ledger, landed_before, draw = begun
        changed = values if output_count > 1 else (values,)
        drew = not all(isinstance(value, type(gr.skip())) for value in changed)
        return ledger.shows(result, landed_before, draw, drew)

    if inspect.iscoroutinefunction(function):  # the attention flow

        async def view_in_order(*args):
            begun = begin(args)
            values = await function(*_without(args, ledger_at))
            return values if lands(begun, args[result_at], values) else _skipped(output_count)

    else:

        def view_in_order(*args):
            begun = begin(args)
            values = function(*_without(args, ledger_at))
            return values if lands(begun, args[result_at], values) else _skipped(output_count)

    return _with_ledger(view_in_order, function, ledger_at)


# ---------------------------------------------------------------- attention flow


FLOW_CONTROLS = ("on_progress", "cancelled")  # keyword arguments a flow function takes, not inputs


def flow_handler(function, outputs: tuple[str, ...], estimate):
    """An async Gradio function: `function` runs in the flow worker with `on_progress(done, total)`
    and `cancelled()`; a progress bar shows max-flows done (against `estimate(*args)` seconds until
    the first is done). Stop (cancels=) ends the wait at once and makes `cancelled()` true, so the
    computation stops between two max-flows and frees the worker."""

    async def wrapped(*args):
        *args, progress = args  # Gradio passes its tracker where the signature below puts it
        seconds = max(estimate(*args) or 1.0, 0.1)
        started = time.monotonic()
        stop = threading.Event()
        done = [0, 0]  # max-flows done, of how many (written by the worker)

        def on_progress(count: int, total: int) -> None:
            done[:] = [count, total]

        work = functools.partial(function, on_progress=on_progress, cancelled=stop.is_set)
        future = asyncio.get_running_loop().run_in_executor(_flow_pool, call_safely, work, *args)
        try:
            while not future.done():
                count, total = done
                if total:
                    elapsed = time.monotonic() - started
                    left = elapsed * (total - count) / max(count, 1)
                    progress(count / total, desc=f"attention flow: {count} of {total} max-flows, about {left:.0f} s left")
                else:
                    elapsed = time.monotonic() - started
                    left = max(seconds - elapsed, 0)
                    progress(min(elapsed / seconds, 0.99), desc=f"attention flow: about {left:.0f} s left (estimate)")
                await asyncio.wait([future], timeout=PROGRESS_TICK_S)
        except asyncio.CancelledError:  # Stop: the worker sees cancelled() at its next max-flow
            stop.set()
            raise
        return _in_order(future.result(), outputs)

    parameters = [p for p in inspect.signature(function).parameters.values() if p.name not in FLOW_CONTROLS]
    tracker = inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())
    wrapped.__signature__ = inspect.Signature([*parameters, tracker])
    wrapped.__name__ = function.__name__
    return wrapped
