"""The order of a visitor's runs and views (run_order.RunLedger, result_state, on_result): a view or
an older run that finishes after a newer run leaves every output as it is. Events are called the
way Gradio calls them (the registered function, its inputs' values in order, the ledger last) with
threads held at chosen points, so each interleaving is exact."""

from __future__ import annotations

import asyncio
import copy
import threading

import gradio as gr
import pytest

from attn_demos.ui import run_order, wiring

SKIP = type(gr.skip())
WAIT_S = 10
PAGE = gr.EventData(gr.Button(render=False), None)  # what Gradio passes for an event the page sent
API = gr.EventData(None, None)  # ... and for an API client's call


class Result:
    """A run's result as a tab keeps it (any object that can be referenced weakly)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _in_thread(function, *args):
    """Start `function(*args)` in a thread; (thread, dict whose "view" is its return value)."""
    finished = {}
    thread = threading.Thread(target=lambda: finished.setdefault("view", function(*args)))
    thread.start()
    return thread, finished


def _skipped(values) -> bool:
    return all(isinstance(value, SKIP) for value in values)


def test_a_ledger_lets_through_only_the_newest_run_and_views_of_its_result():
    ledger = run_order.RunLedger()
    assert ledger.shows(None, ledger.landed())  # before any run: a view of no result (its hint) lands
    first, second = Result("a"), Result("b")
    ticket_a, ticket_b = ledger.start_run(), ledger.start_run()
    assert ledger.land_run(ticket_b, second)
    assert not ledger.land_run(ticket_a, first)  # started earlier, landed later: dropped
    before = ledger.landed()
    assert ledger.shows(second, before) and not ledger.shows(first, before)
    assert ledger.land_run(ledger.start_run(), None)  # a failed run lands (its message, an empty state)
    assert not ledger.shows(second, before)  # a view of the result it replaced, begun before it landed
    assert not ledger.shows(second, ledger.landed())  # ... or after
    assert ledger.shows(None, ledger.landed())


def test_each_visitor_gets_a_fresh_ledger_and_results_are_not_kept_alive():
    ledger = run_order.RunLedger()
    kept = Result("a")
    ledger.land_run(ledger.start_run(), kept)
    fresh = copy.deepcopy(ledger)  # what gr.State does with its default for each visitor
    assert fresh.landed() == 0 and fresh.shows(None, 0) and not fresh.shows(kept, 0)
    assert ledger.shows(kept, ledger.landed())  # the original is untouched
    del kept  # the state's time to live ran out: the ledger holds no result of its own
    assert ledger.shows(None, ledger.landed())


@pytest.fixture
def tab():
    """A one-tab app wired like the real ones: a run writes the result and the text; a Layer
    change redraws the text (held while `hold_view` is clear)."""
    hold_view, view_entered = threading.Event(), threading.Event()
    hold_view.set()

    def run(text: str, layer):
        return (Result(text), f"{text} at layer {layer}") if text else (None, "⚠️ empty")

    def redraw(result, layer):
        view_entered.set()
        assert hold_view.wait(WAIT_S)
        return f"{result.text} at layer {layer}" if result is not None else "type a text"

    with gr.Blocks() as demo:
        text, layer, button = gr.Textbox(), gr.Dropdown([0, 1], value=0), gr.Button()
        state, shown = wiring.result_state(), gr.Markdown()
        wiring.run_on_click_and_enter(button, [text], True, run, [text, layer], [state, shown], api_name="run")
        wiring.on_result(layer.input, redraw, [state, layer], [shown])
    run_fn, redraw_fn = (next(f for f in demo.fns.values() if f.name == name) for name in ("run", "redraw"))
    ledger_state = run_fn.inputs[-1]
    assert redraw_fn.inputs[-1] is ledger_state and redraw_fn.inputs[0] is state
    ledger = copy.deepcopy(ledger_state.value)  # one visitor's ledger
    return run_fn.fn, redraw_fn.fn, ledger, hold_view, view_entered


def _redraw_held(tab):
    """Run "old", then start a redraw of it at layer 1 and hold it in flight: (old, thread, its result)."""
    run, redraw, ledger, hold_view, view_entered = tab
    old, _ = run("old", 0, ledger, PAGE)
    hold_view.clear()
    drawing, finished = _in_thread(redraw, old, 1, ledger, PAGE)
    assert view_entered.wait(WAIT_S)
    return old, drawing, finished


def test_a_redraw_that_finishes_after_a_newer_run_leaves_the_page_alone(tab):
    run, redraw, ledger, hold_view, view_entered = tab
    old, drawing, finished = _redraw_held(tab)
    new, shown = run("new", 0, ledger, PAGE)  # lands while the redraw of "old" is in flight
    assert shown == "new at layer 0"
    hold_view.set()
    drawing.join(WAIT_S)
    assert isinstance(finished["view"], SKIP)  # not "old at layer 1"
    assert redraw(new, 1, ledger, PAGE) == "new at layer 1"  # a redraw of the newest result lands
    assert isinstance(redraw(old, 1, ledger, PAGE), SKIP)


def test_a_failed_run_also_makes_a_pending_redraw_stale_and_an_older_run_is_dropped(tab):
    run, redraw, ledger, hold_view, view_entered = tab
    old, drawing, finished = _redraw_held(tab)
    assert run("", 0, ledger, PAGE) == (None, "⚠️ empty")  # a failed run lands
    hold_view.set()
    drawing.join(WAIT_S)
    assert isinstance(finished["view"], SKIP)
    assert redraw(None, 1, ledger, PAGE) == "type a text"

    ticket = ledger.start_run()  # a run that started first ...
    newer, _ = run("newer", 0, ledger, PAGE)  # ... and one that started later but landed first
    assert not ledger.land_run(ticket, Result("older"))
    assert redraw(newer, 1, ledger, PAGE) == "newer at layer 1"


def test_without_a_newer_run_a_slow_redraw_lands(tab):
    """Control: the same held redraw, no run meanwhile, reaches the page."""
    run, redraw, ledger, hold_view, view_entered = tab
    old, drawing, finished = _redraw_held(tab)
    hold_view.set()
    drawing.join(WAIT_S)
    assert finished["view"] == "old at layer 1"


def test_an_async_view_keeps_gradios_progress_tracker_and_is_guarded_too():
    """The attention flow (async, with a progress tracker Gradio inserts after the inputs)."""
    from gradio.helpers import special_args

    async def flow(result, token, progress=gr.Progress()):  # noqa: B008 (Gradio's convention)
        return f"flow of {result.text} into {token}"

    with gr.Blocks() as demo:
        state, token, shown, button = wiring.result_state(), gr.Number(), gr.Markdown(), gr.Button()
        wiring.on_result(button.click, flow, [state, token], [shown])
    dependency = next(f for f in demo.fns.values() if f.name == "flow")
    ledger = copy.deepcopy(dependency.inputs[-1].value)
    shown_result = Result("a")
    ledger.land_run(ledger.start_run(), shown_result)
    args, progress_at, event_at, _ = special_args(dependency.fn, [shown_result, 3, ledger], event_data=PAGE)
    assert (event_at, progress_at) == (3, 4)  # Gradio passes who triggered it, then the tracker
    assert asyncio.run(dependency.fn(*args)) == "flow of a into 3"
    ledger.land_run(ledger.start_run(), Result("b"))
    assert isinstance(asyncio.run(dependency.fn(*args)), SKIP)


def test_a_view_must_read_exactly_one_result_state():
    with gr.Blocks():
        box, shown = gr.Textbox(), gr.Markdown()
        with pytest.raises(ValueError, match="exactly one result_state"):
            wiring.on_result(box.input, lambda value: value, [box], [shown])


def test_every_event_of_the_app_that_reads_or_writes_a_result_is_in_order(checkpoints):
    """Every tab: each event with a result_state() among its inputs or outputs has that state's
    ledger as an input, so none can overwrite a newer run (the glue, not each tab, does it)."""
    from app_server import model_settings

    from attn_demos import settings
    from attn_demos.ui import app

    with settings.using(settings.Settings(**model_settings(checkpoints))):
        demo = app.build()
    results = {i for i in demo.blocks if i in run_order._LEDGERS}
    ledgers = {run_order._LEDGERS[i]._id for i in results}
    assert len(results) == 6  # Explorer, Translation, QA, Summarization, Image patches, Text generation
    guarded = 0
    for dependency in demo.fns.values():
        inputs = [c._id for c in dependency.inputs]
        touched = {c._id for c in (*dependency.inputs, *dependency.outputs)} & results
        if not touched:
            assert not ledgers & set(inputs), dependency.name
            continue
        (state,) = touched
        assert run_order._LEDGERS[state]._id in inputs, dependency.name
        guarded += 1
    assert guarded >= 6 * 3  # at least a run, an example run and a redraw per tab
    redraws = [d for d in demo.fns.values() if any(event == "input" for _, event in d.targets)]
    assert len(redraws) == 6  # one per tab, for all its controls ...
    assert all(d.trigger_mode == "always_last" and len(d.targets) >= 2 for d in redraws)  # ... the last change waits


def test_of_two_drawing_views_the_later_one_that_drew_wins():
    ledger = run_order.RunLedger()
    result = Result("a")
    ledger.land_run(ledger.start_run(), result)
    landed = ledger.landed()
    earlier, later = ledger.start_draw(), ledger.start_draw()
    assert ledger.shows(result, landed, later, drew=True)
    assert not ledger.shows(result, landed, earlier, drew=True)  # finished after a later one drew
    held, empty = ledger.start_draw(), ledger.start_draw()
    assert ledger.shows(result, landed, empty, drew=False)  # a pick that selected nothing ...
    assert ledger.shows(result, landed, held, drew=True)  # ... does not push aside an earlier redraw
    assert ledger.shows(result, landed)  # a view that does not draw (export, neuron, flow) is not ordered


def test_a_redraw_held_while_a_pick_draws_is_dropped_but_not_for_a_pick_that_selects_nothing():
    hold, entered = threading.Event(), threading.Event()

    def redraw(result, layer):
        entered.set()
        assert hold.wait(WAIT_S)
        return f"{result.text} at layer {layer}", layer

    def pick(selection, result, layer):
        return (f"{result.text} at layer {selection}", selection) if selection else (gr.skip(), gr.skip())

    with gr.Blocks() as demo:
        picked, layer, shown = gr.Textbox(), gr.Dropdown([0, 1, 4], value=0), gr.Markdown()
        state = wiring.result_state()
        wiring.redraw_on([layer], redraw, [state, layer], [shown, layer])
        wiring.on_result(picked.change, pick, [picked, state, layer], [shown, layer], draws=True)
    redraw_fn, pick_fn = (next(f for f in demo.fns.values() if f.name == name).fn for name in ("redraw", "pick"))
    ledger = copy.deepcopy(run_order._LEDGERS[state._id].value)
    result = Result("a")
    ledger.land_run(ledger.start_run(), result)

    for selection, expected in ((4, None), ("", ("a at layer 1", 1))):
        hold.clear()
        entered.clear()
        drawing, finished = _in_thread(redraw_fn, result, 1, ledger, PAGE)
        assert entered.wait(WAIT_S)
        picked_values = pick_fn(selection, result, 0, ledger, PAGE)
        hold.set()
        drawing.join(WAIT_S)
        if expected is None:  # the grid click drew layer 4 and set the control: the older redraw is dropped
            assert picked_values == ("a at layer 4", 4) and _skipped(finished["view"])
        else:  # nothing picked: the redraw the person asked for still lands
            assert _skipped(picked_values) and finished["view"] == expected


def test_an_api_call_always_gets_its_own_outputs(tab):
    """Ordering is for the page; a client that sends calls side by side gets each answer."""
    run, redraw, ledger, hold_view, view_entered = tab
    old, _ = run("old", 0, ledger, PAGE)
    ticket = ledger.start_run()
    new, _ = run("new", 0, ledger, PAGE)
    assert not ledger.land_run(ticket, Result("older"))  # from the page: dropped
    assert ledger.land_run(ticket, Result("older"), ordered=False)  # from a client: its answer
    hold_view.clear()
    drawing, finished = _in_thread(redraw, new, 1, ledger, API)
    assert view_entered.wait(WAIT_S)
    run("newest", 0, ledger, API)
    hold_view.set()
    drawing.join(WAIT_S)
    assert finished["view"] == "new at layer 1"  # an API view of a replaced result still answers
    assert isinstance(redraw(new, 1, ledger, PAGE), SKIP)  # the page's would not


def test_the_second_of_two_identical_drawing_requests_is_not_drawn():
    """A Dropdown selection sends its change twice: the repeat costs no second redraw, while a
    different request, the same one after another, or after a run, is drawn."""
    ledger = run_order.RunLedger()
    assert ledger.start_draw("layer 1") is not None
    assert ledger.start_draw("layer 1") is None  # the page has (or is about to have) it
    assert ledger.start_draw("layer 2") is not None
    assert ledger.start_draw("layer 1") is not None  # back to layer 1 after layer 2: drawn
    ledger.land_run(ledger.start_run(), Result("b"))
    assert ledger.start_draw("layer 1") is not None  # a run landed since: drawn again

    calls = []

    def redraw(result, layer):
        calls.append(layer)
        return f"{result.text} at layer {layer}"

    with gr.Blocks() as demo:
        layer, shown = gr.Dropdown([0, 1, 2], value=0), gr.Markdown()
        state = wiring.result_state()
        wiring.redraw_on([layer], redraw, [state, layer], [shown])
    redraw_fn = next(f for f in demo.fns.values() if f.name == "redraw").fn
    ledger = copy.deepcopy(run_order._LEDGERS[state._id].value)
    result = Result("a")
    ledger.land_run(ledger.start_run(), result)
    assert redraw_fn(result, 1, ledger, PAGE) == "a at layer 1"
    assert isinstance(redraw_fn(result, 1, ledger, PAGE), SKIP)
    assert redraw_fn(result, 2, ledger, PAGE) == "a at layer 2"
    assert redraw_fn(result, 2, ledger, API) == "a at layer 2"  # a client's call always gets its answer
    assert calls == [1, 2, 2]


def test_a_neuron_view_made_while_a_redraw_lands_gives_way_to_it(capsys):
    """The neuron view of the chosen layer, held in flight while a Layer change redraws the page,
    would show the old layer under the new control: it is dropped, and the person told why (a
    toast; printed outside a running app); without a redraw it lands, without a word."""
    hold, entered = threading.Event(), threading.Event()

    def redraw(result, layer):
        return f"{result.text} at layer {layer}", ""  # the picture, and the neuron view cleared

    def neuron(result, layer):
        entered.set()
        assert hold.wait(WAIT_S)
        return f"neuron view of layer {layer}"

    with gr.Blocks() as demo:
        layer, button, shown, terms = gr.Dropdown([0, 1, 3], value=1), gr.Button(), gr.Markdown(), gr.HTML()
        state = wiring.result_state()
        wiring.redraw_on([layer], redraw, [state, layer], [shown, terms])
        wiring.on_result(button.click, neuron, [state, layer], [terms], follows_controls=True, what="neuron view")
    redraw_fn, neuron_fn = (next(f for f in demo.fns.values() if f.name == name).fn for name in ("redraw", "neuron"))
    ledger = copy.deepcopy(run_order._LEDGERS[state._id].value)
    result = Result("a")
    ledger.land_run(ledger.start_run(), result)

    for layer_changed in (True, False):
        hold.clear()
        entered.clear()
        making, finished = _in_thread(neuron_fn, result, 1, ledger, PAGE)
        assert entered.wait(WAIT_S)
        if layer_changed:
            assert redraw_fn(result, 3, ledger, PAGE) == ("a at layer 3", "")
        hold.set()
        making.join(WAIT_S)
        told = capsys.readouterr().out
        if layer_changed:
            assert isinstance(finished["view"], SKIP)  # not layer 1's terms under Layer 3
            assert told.strip() == run_order.STALE_CONTROLS_TEXT.format(what="neuron view")
        else:  # control
            assert finished["view"] == "neuron view of layer 1"
            assert told == ""


def test_a_buttons_view_dropped_after_a_newer_run_says_so_and_a_drawing_view_does_not(capsys):
    """An export held in flight while a newer run lands is not shown, and the person is told why
    (gr.Info: a toast in the page, printed outside a running app); a drawing view (a redraw) that
    gives way to a later one stays silent: the page shows what the person asked last."""
    hold, entered = threading.Event(), threading.Event()

    def run(text: str):
        return Result(text), text

    def export(result):
        entered.set()
        assert hold.wait(WAIT_S)
        return f"export of {result.text}"

    def redraw(result, layer):
        return f"{result.text} at layer {layer}"

    with gr.Blocks() as demo:
        text, layer, button, export_button = gr.Textbox(), gr.Dropdown([0, 1]), gr.Button(), gr.Button()
        state, shown, file = wiring.result_state(), gr.Markdown(), gr.Markdown()
        wiring.run_on_click_and_enter(button, [text], True, run, [text], [state, shown], api_name="run")
        wiring.on_result(export_button.click, export, [state], [file], what="export")
        wiring.redraw_on([layer], redraw, [state, layer], [shown])
    run_fn, export_fn, redraw_fn = (next(f for f in demo.fns.values() if f.name == n).fn for n in ("run", "export", "redraw"))
    ledger = copy.deepcopy(run_order._LEDGERS[state._id].value)
    old, _ = run_fn("old", ledger, PAGE)
    exporting, finished = _in_thread(export_fn, old, ledger, PAGE)
    assert entered.wait(WAIT_S)
    new, _ = run_fn("new", ledger, PAGE)
    hold.set()
    exporting.join(WAIT_S)
    assert isinstance(finished["view"], SKIP)
    assert capsys.readouterr().out.strip() == run_order.STALE_RUN_TEXT.format(what="export")
    assert export_fn(new, ledger, PAGE) == "export of new"  # control: an export of the newest result lands
    assert isinstance(redraw_fn(old, 1, ledger, PAGE), SKIP)  # a drawing view of the old result: dropped ...
    assert capsys.readouterr().out == ""  # ... silently
