"""The order of a visitor's runs and views (run_order.Results): a view, or an older run, that finishes
after a newer run leaves every output as it is. The page events are called as Gradio calls them (the
visitor's RunOrder first, then the inputs' values), with threads held at chosen points, so each
interleaving is exact."""

from __future__ import annotations

import asyncio
import copy
import threading

import gradio as gr
import pytest

from attn_demos.ui import run_order, wiring

SKIP = gr.skip()
WAIT_S = 10


class Result:
    """A run's result as a tab keeps it."""

    def __init__(self, text: str) -> None:
        self.text = text


class Held:
    """Wraps a function so that its first call after start() waits until finish()."""

    def __init__(self, function) -> None:
        self.function, self.entered, self.released = function, threading.Event(), threading.Event()
        self.entered.set()
        self.__name__ = function.__name__  # the event's name

    def __call__(self, *args):
        if not self.entered.is_set():
            self.entered.set()
            assert self.released.wait(WAIT_S)
        return self.function(*args)

    def start(self, function, *args) -> tuple[threading.Thread, dict]:
        """`function(*args)` in a thread, held inside the view: (thread, dict with its "outputs")."""
        self.entered.clear()
        self.released.clear()
        finished = {}
        thread = threading.Thread(target=lambda: finished.setdefault("outputs", function(*args)))
        thread.start()
        assert self.entered.wait(WAIT_S)
        return thread, finished

    def finish(self, thread: threading.Thread) -> None:
        self.released.set()
        thread.join(WAIT_S)


def run(text: str, layer=0):
    return (Result(text), f"{text} at layer {layer}") if text else (None, "⚠️ empty")


def redraw(result, layer):
    return f"{result.text} at layer {layer}" if result is not None else "type a text"


def pick(selection, result, layer):
    return (f"{result.text} at layer {selection}", selection) if selection else (SKIP, SKIP)


def neuron(result, layer):
    return f"neuron view of layer {layer}"


def export(result):
    return f"export of {result.text}"


async def flow(request, progress, result):
    return f"flow of {result.text}"


def tab(redraw_view=redraw, neuron_view=neuron, export_view=export) -> tuple[dict, run_order.RunOrder]:
    """A one-tab app wired as the real ones: ({event name: its function}, one visitor's RunOrder)."""
    with gr.Blocks() as demo:
        text, layer, button, picked = gr.Textbox(), gr.Dropdown([0, 1, 2, 3, 4]), gr.Button(), gr.Textbox()
        neuron_button, export_button, flow_button, shown, terms = gr.Button(), gr.Button(), gr.Button(), gr.Markdown(), gr.HTML()
        results = wiring.Results("run")
        wiring.run_on_click_and_enter(button, [text], True, run, [text, layer], [results.state, shown], "run", results)
        results.redraw_on([layer], redraw_view, [results.state, layer], [shown])
        results.view_on(picked.change, pick, [picked, results.state, layer], [shown, layer], draws=True)
        results.view_on(neuron_button.click, neuron_view, [results.state, layer], [terms], follows_controls=True, what="neuron view")
        results.view_on(export_button.click, export_view, [results.state], [terms], what="export", api_name="run_export")
        results.view_on(flow_button.click, flow, [results.state], [terms], what="attention flow")
    page = {d.name: d.fn for d in demo.fns.values() if d.api_visibility == "private" and d.fn is not None}
    return page, copy.deepcopy(results.order.value)


def test_a_redraw_that_finishes_after_a_newer_run_leaves_the_page_alone():
    held = Held(redraw)
    page, order = tab(redraw_view=held)
    shown, _ = page["run"](order, "old", 0)
    for newer in ("new", ""):  # a run, or a failed run, lands while the redraw of the shown result is drawn
        drawing, finished = held.start(page["redraw"], order, shown, 2)
        result, text = page["run"](order, newer, 0)
        held.finish(drawing)
        assert text == (f"{newer} at layer 0" if newer else "⚠️ empty")
        assert finished["outputs"] == SKIP  # not the replaced text at layer 2
        assert page["redraw"](order, result, 1) == redraw(result, 1)  # a redraw of the newest result lands
        shown = result
    drawing, finished = held.start(page["redraw"], order, None, 2)  # control: no run meanwhile
    held.finish(drawing)
    assert finished["outputs"] == "type a text"


def test_an_older_run_that_lands_after_a_newer_one_leaves_the_page_alone():
    held = Held(run)
    with gr.Blocks():
        text, button, shown = gr.Textbox(), gr.Button(), gr.Markdown()
        results = wiring.Results("run")
        event = wiring.run_on_click_and_enter(button, [text], True, held, [text], [results.state, shown], "run", results)
    order = copy.deepcopy(results.order.value)
    running, finished = held.start(event.fn, order, "older")
    _, shown_text = event.fn(order, "newer")
    held.finish(running)
    assert shown_text == "newer at layer 0" and finished["outputs"] == SKIP
    assert event.fn(order, "newest")[1] == "newest at layer 0"


def test_of_a_redraw_and_a_pick_in_flight_the_later_one_that_drew_wins():
    held = Held(redraw)
    page, order = tab(redraw_view=held)
    result, _ = page["run"](order, "a", 0)
    drawing, finished = held.start(page["redraw"], order, result, 1)
    assert page["pick"](order, 4, result, 0) == ("a at layer 4", 4)  # a grid click: layer 4 drawn and chosen
    held.finish(drawing)
    assert finished["outputs"] == SKIP  # the older redraw would draw layer 1 under Layer 4
    drawing, finished = held.start(page["redraw"], order, result, 2)
    assert page["pick"](order, "", result, 0) == (SKIP, SKIP)  # a click that selects nothing ...
    held.finish(drawing)
    assert finished["outputs"] == "a at layer 2"  # ... does not push aside the redraw asked for


def test_a_repeated_layer_choice_is_drawn_once():
    """A Dropdown selection sends its change twice: the repeat costs no second redraw; another
    layer, the same one after another, or after a run, is drawn."""
    drawn = []

    def redraw_counted(result, layer):
        drawn.append(layer)
        return redraw(result, layer)

    redraw_counted.__name__ = "redraw"
    page, order = tab(redraw_view=redraw_counted)
    result, _ = page["run"](order, "a", 0)
    assert [page["redraw"](order, result, layer) for layer in (1, 1, 2, 1)] == ["a at layer 1", SKIP, "a at layer 2", "a at layer 1"]
    result, _ = page["run"](order, "b", 0)
    assert page["redraw"](order, result, 1) == "b at layer 1"
    assert drawn == [1, 2, 1, 1]


def test_a_neuron_view_made_while_a_redraw_lands_gives_way_and_says_so(capsys):
    """The neuron view of layer 1, made while a Layer change redraws the page at layer 3, would
    show the old layer under the new control: it is dropped, and the person told why (a toast;
    printed outside a running app); without a redraw it lands, without a word."""
    held = Held(neuron)
    page, order = tab(neuron_view=held)
    result, _ = page["run"](order, "a", 0)
    for layer_changed in (True, False):
        making, finished = held.start(page["neuron"], order, result, 1)
        if layer_changed:
            assert page["redraw"](order, result, 3) == "a at layer 3"
        held.finish(making)
        told = capsys.readouterr().out.strip()
        if layer_changed:
            assert finished["outputs"] == SKIP and told == run_order.STALE_CONTROLS_TEXT.format(what="neuron view")
        else:
            assert finished["outputs"] == "neuron view of layer 1" and told == ""


def test_a_buttons_view_after_a_newer_run_says_so_and_a_redraw_gives_way_silently(capsys):
    held = Held(export)
    page, order = tab(export_view=held)
    old, _ = page["run"](order, "old", 0)
    exporting, finished = held.start(page["export"], order, old)
    new, _ = page["run"](order, "new", 0)
    held.finish(exporting)
    assert finished["outputs"] == SKIP
    assert capsys.readouterr().out.strip() == run_order.STALE_RUN_TEXT.format(what="export")
    assert page["export"](order, new) == "export of new"  # control: an export of the newest result lands
    assert asyncio.run(page["flow"](order, None, lambda *args, **kwargs: None, new)) == "flow of new"  # request, tracker first
    assert asyncio.run(page["flow"](order, None, lambda *args, **kwargs: None, old)) == SKIP
    assert page["redraw"](order, old, 1) == SKIP
    assert capsys.readouterr().out.strip() == run_order.STALE_RUN_TEXT.format(what="attention flow")  # not the redraw


def test_api_clients_call_endpoints_that_answer_every_call():
    """Ordering is for the page; an API endpoint calls the tab's function as it is."""
    with gr.Blocks() as demo:
        text, layer, shown, button = gr.Textbox(label="text"), gr.Dropdown([0, 1], label="layer"), gr.Markdown(), gr.Button()
        results = wiring.Results("run")
        wiring.run_on_click_and_enter(button, [text], True, run, [text, layer], [results.state, shown], "run", results)
        results.view_on(button.click, export, [results.state], [shown], api_name="run_export")
    endpoints = demo.get_api_info()["named_endpoints"]
    assert set(endpoints) == {"/run", "/run_export"}
    assert [p["parameter_name"] for p in endpoints["/run"]["parameters"]] == ["text", "layer"]
    public = {d.api_name: d.fn for d in demo.fns.values() if d.api_visibility == "public"}
    assert public == {"run": run, "run_export": export}


def test_a_view_reads_its_tabs_result():
    with gr.Blocks():
        box, shown = gr.Textbox(), gr.Markdown()
        with pytest.raises(ValueError, match="result state once"):
            wiring.Results("run").view_on(box.input, redraw, [box], [shown])
