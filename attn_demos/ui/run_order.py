"""The order of a visitor's runs and views in one tab: a view, or an older run, that finishes after a
newer run leaves the page alone.

Gradio runs a visitor's events side by side (the queue's concurrency), so a redraw of the previous
result could land after a newer run and leave the old heatmap, badge and tokens under the new text.
A tab's Results keeps its last result (`state`) and, per visitor, a RunOrder (`order`): an explicit
input of every page event that runs or draws, which numbers each event as it begins and lets its
outputs land only if nothing newer landed meanwhile. API clients call twin endpoints without it:
each of their calls gets its own outputs.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from dataclasses import dataclass

import gradio as gr

RESULT_TTL_SECONDS = 900  # a visitor's last result (kept for re-drawing) is dropped after 15 minutes
# what a person is told when a view they asked for (a button's: export, flow, neuron view) is not shown
STALE_RUN_TEXT = "A newer run replaced the result this {what} was made from, so it was not shown: click again for the new one."
STALE_CONTROLS_TEXT = "The layer or head changed while this {what} was made, so it was not shown: click again."
SKIP = gr.skip()  # returned alone, it leaves every output as it is

_LOCK = threading.Lock()  # for every visitor's RunOrder: each step under it is a few comparisons


@dataclass
class RunOrder:
    """One visitor's runs and drawing views (redraws, picks) of one tab, numbered as they begin."""

    begun: int = 0  # numbers handed out so far
    run: int = 0  # the run whose outputs the page shows
    result: weakref.ref | None = None  # ... and its result (None: no run yet, or it failed)
    drawing: int = 0  # the drawing view whose picture the page shows
    asked: tuple | None = None  # (run, request) of the latest drawing view

    def begin(self, request: tuple | None = None) -> tuple[int, int, int] | None:
        """(this event's number, the run and the drawing shown now); None for a drawing view asked
        what the latest one was, with no run since: the page has it, or is about to (a Dropdown
        selection sends its change twice)."""
        with _LOCK:
            if request is not None:
                if self.asked == (self.run, request):
                    return None
                self.asked = (self.run, request)
            self.begun += 1
            return self.begun, self.run, self.drawing

    def land_run(self, number: int, result) -> bool:
        """Whether run `number` goes to the page: not when a newer run landed first."""
        with _LOCK:
            if number < self.run:
                return False
            self.run, self.result = number, (None if result is None else weakref.ref(result))
            return True

    def refusal(self, begun: tuple, result, draws: bool, follows_controls: bool, drew: bool) -> str | None:
        """None if a view begun at `begun` with `result` may go to the page, else why not."""
        number, run, drawing = begun
        with _LOCK:
            if self.run != run or (self.result() if self.result else None) is not result:
                return STALE_RUN_TEXT
            if (follows_controls and self.drawing != drawing) or (draws and number < self.drawing):
                return STALE_CONTROLS_TEXT
            if draws and drew:
                self.drawing = number
            return None


class Results:
    """A tab's last result (`state`, dropped after RESULT_TTL_SECONDS) and its visitors' RunOrders
    (`order`), with the events that keep them in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = gr.State(time_to_live=RESULT_TTL_SECONDS)
        self.order = gr.State(RunOrder())  # Gradio gives each visitor a copy

    def run_on(self, listener, function, inputs: list, outputs: list, api_name: str | None = None):
        """`listener(...)` (e.g. `functools.partial(gr.on, triggers)`) runs `function`, whose outputs
        include `state`; they land only if no newer run of the visitor landed first. With `api_name`,
        an endpoint for API clients too. The tab's runs share one concurrency limit."""
        at = _position(self.state, outputs)
        limit = f"{self.name}-run"

        def run_in_order(order: RunOrder, *values):
            number, _, _ = order.begin()
            returned = function(*values)
            result = returned[at] if len(outputs) > 1 else returned
            return returned if order.land_run(number, result) else SKIP

        run_in_order.__name__ = function.__name__
        if api_name:
            gr.on([], function, inputs, outputs, api_name=api_name, concurrency_id=limit)
        return listener(run_in_order, [self.order, *inputs], outputs, api_visibility="private", concurrency_id=limit)

    def view_on(
        self, listener, function, inputs: list, outputs: list, draws: bool = False, follows_controls: bool = False,
        what: str = "request", api_name: str | None = None, **event_args,
    ):
        """`listener(...)` (e.g. `export_button.click`) runs a view of the last result (`state`
        among `inputs`): its outputs land only if that result is still the newest run's and no
        run landed while it was made. Views that `draws` (a redraw, a pick) also give way to a
        later one that drew first, so the Layer and Head they set match the picture; a view that
        `follows_controls` (the neuron view of the chosen layer and head) gives way to any drawing
        that landed meanwhile. A button's view that gives way says so in a toast, naming itself by
        `what`. An async `function` (the attention flow) takes Gradio's request and progress tracker
        first."""
        at = _position(self.state, inputs)

        def finish(order: RunOrder, begun, values: tuple, returned):
            changed = returned if len(outputs) > 1 and isinstance(returned, tuple) else (returned,)
            drew = not all(isinstance(value, dict) and value == SKIP for value in changed)  # a pick of nothing did not
            refused = order.refusal(begun, values[at], draws, follows_controls, drew)
            if refused and not draws:
                gr.Info(refused.format(what=what))
            return SKIP if refused else returned

        def begin(order: RunOrder, values: tuple):
            controls = tuple(repr(value) for i, value in enumerate(values) if i != at)
            return order.begin((function.__name__, controls) if draws else None)

        if inspect.iscoroutinefunction(function):

            async def view_in_order(order: RunOrder, request: gr.Request, progress=gr.Progress(), *values):
                begun = begin(order, values)
                return finish(order, begun, values, await function(request, progress, *values))

        else:

            def view_in_order(order: RunOrder, *values):
                begun = begin(order, values)
                return SKIP if begun is None else finish(order, begun, values, function(*values))

        view_in_order.__name__ = function.__name__
        if api_name:
            gr.on([], function, inputs, outputs, api_name=api_name)
        return listener(view_in_order, [self.order, *inputs], outputs, api_visibility="private", **event_args)

    def redraw_on(self, controls: list, function, inputs: list, outputs: list):
        """One redraw for the view controls (their `.input`: a person's change, not a run's update).
        "always_last" sends the last change made while a redraw is pending after it (Gradio's
        default, "once", dropped them and left the picture on another layer than the Layer control
        shows); of redraws and picks in flight together, the one begun last wins."""
        triggers = [control.input for control in controls]
        return self.view_on(functools.partial(gr.on, triggers), function, inputs, outputs, draws=True, trigger_mode="always_last")


def _position(state: gr.State, components: list) -> int:
    positions = [i for i, component in enumerate(components) if component is state]
    if len(positions) != 1:
        raise ValueError(f"an event of a tab's runs or views has its result state once, found {len(positions)}")
    return positions[0]
