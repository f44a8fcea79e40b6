"""The order of a visitor's runs and views in one tab: a view, or an older run, that finishes after a
newer run leaves the page alone.

Gradio runs a visitor's events side by side (the queue's concurrency), so a redraw of the previous
result could land after the newer run and leave the old heatmap, badge and tokens under the new
text. Each tab's result_state() has a RunLedger beside it; runs (wiring.run_on_click_and_enter,
run_example_on_click) and views (on_result, redraw_on) consult it. An API client's call always
gets its own outputs.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref

import gradio as gr

RESULT_TTL_SECONDS = 900  # a visitor's last result (kept for re-drawing) is dropped after 15 minutes
# what a person is told when a view they asked for (a button's: export, flow, neuron view) is not shown
STALE_RUN_TEXT = "A newer run replaced the result this {what} was made from, so it was not shown: click again for the new one."
STALE_CONTROLS_TEXT = "The layer or head changed while this {what} was made, so it was not shown: click again."


def on_result(
    listener, function, inputs: list, outputs: list, draws: bool = False, follows_controls: bool = False,
    what: str = "request", **event_args
):
    """`listener(function, inputs, outputs, **event_args)` (e.g. `export_button.click`) for a view
    of the tab's last result, a result_state() among `inputs`: its outputs land only if that result
    is still the newest run's and no run landed while it was drawn; otherwise every output is left
    as it is (see RunLedger). Views that `draws` (the redraw, a pick) also give way to a later one
    that drew first, so the Layer and Head they set match the picture. A view that
    `follows_controls` (the neuron view of the chosen layer and head) gives way to any drawing view
    that landed while it was made: the controls may show another layer by then. A view that does
    not draw was asked for by a button: when it gives way, a toast (gr.Info) names it by `what`
    and says why, so the click is not lost without a word."""
    result_at = _result_positions(inputs)
    if len(result_at) != 1:
        raise ValueError(f"a view reads exactly one result_state(), found {len(result_at)}")
    guarded = _view_in_order(function, result_at[0], len(inputs), len(outputs), draws, follows_controls, what)
    return listener(guarded, [*inputs, _LEDGERS[inputs[result_at[0]]._id]], outputs, **event_args)


def redraw_on(controls: list, function, inputs: list, outputs: list):
    """One redraw event for a tab's view controls (their `.input`: a person's change, not a run's
    update), guarded like on_result as a drawing view: of redraws and picks in flight together,
    the one begun last wins. Changes made while a redraw is pending are kept: "always_last" asks
    the page to send the last one after it (Gradio's default, "once", dropped them and left the
    picture on another layer than the Layer control shows); the page does not always wait (a
    Dropdown selection fires `.input` twice at once), which the draw order makes harmless, and
    the second of two identical requests is not drawn at all (RunLedger.start_draw)."""
    return on_result(
        functools.partial(gr.on, [control.input for control in controls]), function, inputs, outputs,
        draws=True, trigger_mode="always_last", api_visibility="private",
    )


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
        self._latest_draw = None  # (what the latest drawing view was asked, runs landed when it began)
        self._drawn = 0  # the newest drawing view's ticket that changed the page
        self._drawings = 0  # drawing views that changed the page so far

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

    def start_draw(self, request=None) -> int | None:
        """A drawing view's ticket; None when `request` (what it was asked: its result and
        controls) repeats the latest drawing view's and no run landed since, so the page already
        shows, or is about to show, exactly that (a Dropdown selection sends its change twice)."""
        with self._lock:
            if request is not None and self._latest_draw == (request, self._landings):
                return None
            self._latest_draw = (request, self._landings)
            self._draws += 1
            return self._draws

    def drawings(self) -> int:
        return self._drawings

    def shows(
        self, result, landed_before: int, draw: int | None = None, drew: bool = True, drawings_before: int | None = None
    ) -> bool:
        """Whether a view of `result` begun when landed() was `landed_before` may go to the page; a
        drawing view gives its `draw` ticket (recorded when it `drew`, i.e. changed an output); a
        view that follows the controls gives drawings() as it was when it began."""
        with self._lock:
            newest = self._newest() if self._newest is not None else None
            if self._landings != landed_before or newest is not result:
                return False
            if drawings_before is not None and self._drawings != drawings_before:
                return False
            if draw is None:
                return True
            if draw < self._drawn:
                return False
            if drew:
                self._drawn = draw
                self._drawings += 1
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


def in_run_order(function, inputs: list, outputs: list):
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


REPEATED = object()  # a drawing view asked exactly what the latest one was: nothing to draw


def _request(function, args: tuple, result_at: int, ledger_at: int) -> tuple:
    """What a drawing view is asked: its function, the result (by identity) and its controls' values."""
    controls = tuple(repr(value) for i, value in enumerate(args[:ledger_at]) if i != result_at)
    return function.__name__, id(args[result_at]), controls


def _view_in_order(
    function, result_at: int, ledger_at: int, output_count: int, draws: bool = False, follows_controls: bool = False,
    what: str = "request",
):
    def begin(args):
        """None for an API call, REPEATED for a drawing view the page already has, else
        (ledger, runs landed so far, draw ticket or None, drawings so far or None)."""
        ledger, event = args[ledger_at], args[ledger_at + 1]
        if not _from_page(event):
            return None
        landed, drawings = ledger.landed(), ledger.drawings() if follows_controls else None
        if not draws:
            return ledger, landed, None, drawings
        draw = ledger.start_draw(_request(function, args, result_at, ledger_at))
        return REPEATED if draw is None else (ledger, landed, draw, drawings)

    def lands(begun, result, values) -> bool:
        if begun is None:  # an API call: its own outputs
            return True
        ledger, landed_before, draw, drawings_before = begun
        changed = values if output_count > 1 else (values,)
        drew = not all(isinstance(value, type(gr.skip())) for value in changed)
        shown = ledger.shows(result, landed_before, draw, drew, drawings_before)
        if not shown and draw is None:  # a button's view: say why nothing came
            newer_run = ledger.landed() != landed_before or not ledger.shows(result, ledger.landed())
            gr.Info((STALE_RUN_TEXT if newer_run else STALE_CONTROLS_TEXT).format(what=what))
        return shown

    if inspect.iscoroutinefunction(function):  # the attention flow

        async def view_in_order(*args):
            begun = begin(args)
            if begun is REPEATED:
                return _skipped(output_count)
            values = await function(*_without(args, ledger_at))
            return values if lands(begun, args[result_at], values) else _skipped(output_count)

    else:

        def view_in_order(*args):
            begun = begin(args)
            if begun is REPEATED:
                return _skipped(output_count)
            values = function(*_without(args, ledger_at))
            return values if lands(begun, args[result_at], values) else _skipped(output_count)

    return _with_ledger(view_in_order, function, ledger_at)
