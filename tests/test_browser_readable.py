"""Views a person can read at a glance, in the real app in headless Chromium: every view follows one
selection (Layer, Head, the grid, a clicked row), the head view opens readable, heatmaps fill the
page's width, nothing shows as selected until a row is clicked, a colour scale [CLS] / [SEP]
cannot flatten, masked cells and dark mode, every label whole at 420 px, and QA and Text
generation with the Explorer's views. Expected numbers come from the task run in this process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_browser import SCREENSHOTS, WAIT_MS  # one Chromium set-up for every browser file

pytestmark = pytest.mark.browser

TEXT = "The animal didn't cross the street because it was too tired."  # 16 MiniLM tokens
SHOWN_FROM = 0.1  # head_view.SHOWN_FROM: the head view draws weights from this up until "show all lines"


@pytest.fixture(scope="module")
def library():
    from attn_demos.tasks.explorer import explore

    return explore(TEXT).library  # (L, H, T, T) what the app's run shows


@pytest.fixture
def explorer(browser, app_server):
    page = _open(browser, app_server[1], "Explorer")
    _run(page, "explore", TEXT)
    yield page
    page.close()


def _open(browser, url: str, tab: str, width: int = 1280, dark: bool = False):
    page = browser.new_page(viewport={"width": width, "height": 1200}, color_scheme="dark" if dark else "light")
    page.goto(url + ("?__theme=dark" if dark else ""), wait_until="load")
    page.get_by_role("tab").first.wait_for(timeout=WAIT_MS)
    button = page.get_by_role("tab", name=tab)
    if button.count() and button.first.is_visible():
        button.first.click()
    else:  # a narrow window keeps the last tabs in Gradio's "More tabs" menu
        page.get_by_label("More tabs").click()
        page.locator(".overflow-dropdown button", has_text=tab).first.click()
    return page


def _run(page, prefix: str, text: str | None = None) -> None:
    if text is not None:
        page.locator(f"#{prefix}-text textarea").fill(text)
    page.locator(f"#{prefix}-run").click()
    page.locator(f"#{prefix}-badge").get_by_text("recomputed from weights").wait_for(timeout=WAIT_MS)
    page.locator(f"#{prefix}-heatmap .attn-view.attn-ready").wait_for(timeout=WAIT_MS)


def _payload(page, selector: str) -> dict:
    return json.loads(page.locator(f"{selector} .attn-view").first.get_attribute("data-attn-payload"))


def _head_view(page, prefix: str = "explore"):
    view = page.locator(f"#{prefix}-head-view .attn-view.attn-ready")
    view.wait_for(timeout=WAIT_MS)
    return view


def _wait_attribute(page, selector: str, name: str, value: str) -> None:
    page.wait_for_function(
        "([selector, name, value]) => { const v = document.querySelector(selector);"
        " return v && v.getAttribute(name) === value; }",
        arg=[selector, name, value],
        timeout=WAIT_MS,
    )


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator(f'#{elem_id} [role=option][aria-label="{option}"]').first.click()


def _shot(page, name: str, selector: str | None = None) -> None:
    path = SCREENSHOTS / f"{name}.png"
    (page.locator(selector) if selector else page).screenshot(path=str(path))


def _kept(weights: np.ndarray, floor: float) -> np.ndarray:
    """Which weights the head view draws at `floor`: as sent, rounded to thousandths in float32."""
    return np.rint(weights.astype(np.float32) * 1000) >= max(round(floor * 1000), 1)


# ----------------------------------------------------------------------------- 1. one selection
def test_the_head_view_follows_layer_head_and_a_grid_click(explorer, library):
    head = _head_view(explorer)
    assert head.get_attribute("data-layer") == "0"  # the run's Layer
    explorer.locator('#explore-grid button.attn-cell[data-layer="3"][data-head="5"]').click()
    explorer.locator("#explore-heatmap .attn-title").get_by_text("layer 3, head 5").wait_for(timeout=WAIT_MS)
    _wait_attribute(explorer, "#explore-head-view .attn-view", "data-layer", "3")
    assert head.get_attribute("data-heads") == "5"  # the grid's head, alone
    assert head.locator("select.attn-layer").input_value() == "3"  # its own select says so
    assert int(head.get_attribute("data-visible-lines")) == int(_kept(library[3, 5], SHOWN_FROM).sum())
    _choose(explorer, "explore-layer", "4")  # the Layer control drives it too
    _wait_attribute(explorer, "#explore-head-view .attn-view", "data-layer", "4")
    assert head.get_attribute("data-heads") == "5"
    _shot(explorer, "readable-head-view-follows-grid", "#explore-head-view")


def test_a_head_chosen_in_the_neuron_view_while_head_is_mean_becomes_the_tabs_head(explorer, library):
    canvas = explorer.locator("#explore-heatmap canvas.attn-hm-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.6, "y": box["height"] * 0.5})  # a row, with Head = mean
    title = explorer.locator("#explore-neuron .attn-title")
    title.get_by_text("the head with the most weight from this row").wait_for(timeout=WAIT_MS)
    query = _payload(explorer, "#explore-heatmap")["chosen"]
    explorer.locator("#explore-neuron select.attn-nv-head").select_option("7")
    title.get_by_text("neuron view: layer 0, head 7").wait_for(timeout=WAIT_MS)
    assert explorer.locator("#explore-head input").first.input_value() == "7"  # the tab's Head control
    explorer.locator("#explore-heatmap .attn-title").get_by_text("layer 0, head 7").wait_for(timeout=WAIT_MS)
    _wait_attribute(explorer, "#explore-head-view .attn-view", "data-heads", "7")
    checked_against = [
        float(v)
        for v in explorer.eval_on_selector_all(
            "#explore-neuron td.attn-checked-against", "cells => cells.map(c => c.dataset.value)"
        )
    ]
    np.testing.assert_allclose(checked_against, library[0, 7, query], atol=1e-6)  # the same row, now of head 7


# ----------------------------------------------------------------------------- 2. head view readable
def test_the_head_view_opens_readable_and_show_all_draws_every_line(explorer, library):
    head = _head_view(explorer)
    shown = [int(h) for h in head.get_attribute("data-heads").split(",")]
    tokens = library.shape[-1]
    assert len(shown) == 3  # Head is "mean": the top 3 heads, not all 12
    lines = int(head.get_attribute("data-visible-lines"))
    assert lines == int(_kept(library[0, shown], SHOWN_FROM).sum())
    assert 0 < lines <= tokens * len(shown) / SHOWN_FROM  # a row holds at most 1 / SHOWN_FROM such weights
    before_this_change = int(_kept(library[0], 0.001).sum())  # every head, every weight ≥ 0.001: 2,807 lines
    assert lines < before_this_change / 10
    head.get_by_text("show all lines").click()
    assert int(head.get_attribute("data-visible-lines")) == int(_kept(library[0, shown], 0.001).sum()) > lines
    _shot(explorer, "readable-head-view-default", "#explore-head-view")


# ----------------------------------------------------------------------------- 3. heatmaps fill the width
def test_the_translation_heatmap_fills_the_width(browser, app_server):
    page = _open(browser, app_server[1], "Translation")
    try:
        _run(page, "translate", "The cat sat on the mat.")
        view = page.locator("#translate-heatmap .attn-view")
        room = page.locator("#translate-heatmap").bounding_box()["width"]
        drawn = page.locator("#translate-heatmap canvas.attn-hm-canvas").bounding_box()["width"]
        assert drawn >= 0.6 * room, (drawn, room)
        assert float(view.get_attribute("data-cell-height")) >= 16  # every row tall enough for its label
        _shot(page, "readable-translation-heatmap", "#translate-heatmap")
    finally:
        page.close()


# ----------------------------------------------------------------------------- 4. no phantom selection
def test_nothing_shows_as_selected_until_a_row_is_clicked(browser, app_server):
    page = _open(browser, app_server[1], "Explorer")
    try:
        page.locator("#tab-explore button.gallery-item").nth(2).click()  # an example runs
        page.locator("#explore-badge").get_by_text("recomputed from weights").wait_for(timeout=WAIT_MS)
        page.locator("#explore-heatmap .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
        note = page.locator("#explore-heatmap .attn-controls .attn-note")
        assert "selected query" not in note.inner_text() and _payload(page, "#explore-heatmap")["chosen"] is None
        page.locator('#explore-grid button.attn-cell[data-layer="1"][data-head="2"]').click()
        page.locator("#explore-heatmap .attn-title").get_by_text("layer 1, head 2").wait_for(timeout=WAIT_MS)
        assert "selected query" not in note.inner_text() and _payload(page, "#explore-heatmap")["chosen"] is None
        assert _exported(page)["chosen_token"] is None  # the export says what the page shows
        canvas = page.locator("#explore-heatmap canvas.attn-hm-canvas")
        box = canvas.bounding_box()
        canvas.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.6})
        page.wait_for_function(
            "() => JSON.parse(document.querySelector('#explore-heatmap .attn-view').dataset.attnPayload).chosen !== null",
            timeout=WAIT_MS,
        )
        row = _payload(page, "#explore-heatmap")["chosen"]
        assert "selected query" in page.locator("#explore-heatmap .attn-controls .attn-note").inner_text()
        assert _exported(page)["chosen_token"]["index"] == row
    finally:
        page.close()


def _exported(page) -> dict:
    accordion = page.locator("#explore-export-accordion")
    if not page.locator("#explore-export").is_visible():
        accordion.get_by_text("Export", exact=True).first.click()
    previous = (
        page.locator("#explore-json a[download]").first.get_attribute("href")
        if page.locator("#explore-json a[download]").count()
        else None
    )
    page.locator("#explore-export").click()
    page.wait_for_function(
        "(old) => { const a = document.querySelector('#explore-json a[download]'); return a && a.getAttribute('href') !== old; }",
        arg=previous,
        timeout=WAIT_MS,
    )
    href = page.locator("#explore-json a[download]").first.get_attribute("href")
    return json.loads(page.request.get(href).text())


# ----------------------------------------------------------------------------- 5. scale, masks, dark mode, labels
def test_special_tokens_do_not_set_the_colour_scale(explorer, library):
    view = explorer.locator("#explore-heatmap .attn-view")
    inner = library[0].mean(axis=0)[1:-1, 1:-1]  # (T-2, T-2) layer 0, mean of heads, without [CLS] and [SEP]
    everything = library[0].mean(axis=0)
    assert float(view.get_attribute("data-vmax")) == pytest.approx(inner.max(), abs=1e-6)
    assert inner.max() < everything.max()  # control: the special tokens hold the largest weights
    assert "without special tokens" in view.locator(".attn-scale-note").inner_text()
    view.get_by_text("special tokens in the colour scale").click()
    assert float(view.get_attribute("data-vmax")) == pytest.approx(everything.max(), abs=1e-6)


def test_layer_mean_with_one_head_says_what_it_shows(explorer):
    _choose(explorer, "explore-layer", "mean")
    explorer.locator("#explore-heatmap .attn-title").get_by_text("mean of layers").wait_for(timeout=WAIT_MS)
    _choose(explorer, "explore-head", "2")
    explorer.locator("#explore-heatmap .attn-title").get_by_text("head 2, mean over layers").wait_for(timeout=WAIT_MS)


def test_masked_cells_are_not_drawn_as_zero_and_dark_mode_draws_on_the_page(browser, app_server):
    page = _open(browser, app_server[1], "Text generation", dark=True)
    try:
        _run(page, "generate")
        canvas = page.locator("#generate-heatmap canvas.attn-hm-canvas")
        view = page.locator("#generate-heatmap .attn-view")
        width = canvas.bounding_box()["width"]
        cw = float(view.get_attribute("data-cell-width"))
        tip = page.locator(".attn-tooltip")
        for y in range(2, 300, 3):  # down the last column, from the key labels to the first step's row
            canvas.hover(position={"x": width - cw / 2 - 1, "y": y})
            if "\u2192" in tip.inner_text():
                break
        assert "masked" in tip.inner_text()  # the first step could not see the last token yet
        assert "masked" in view.inner_text()  # the legend names the hatching
        pixels = page.evaluate(
            "() => { const c = document.querySelector('#generate-heatmap canvas.attn-hm-canvas');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let white = 0, light = 0;"
            " for (let i = 0; i < d.length; i += 4) { if (d[i+3] === 255 && d[i] > 245 && d[i+1] > 245 && d[i+2] > 245) white++;"
            " if (d[i+3] > 128 && d[i] + d[i+1] + d[i+2] > 600) light++; } return {white: white, light: light, all: d.length / 4}; }"
        )
        assert pixels["white"] < 0.01 * pixels["all"]  # no white background on a dark page
        assert pixels["light"] > 0  # the labels are written in the page's light text colour
        _shot(page, "readable-generation-dark", "#generate-heatmap")
    finally:
        page.close()


# ----------------------------------------------------------------------------- 6. narrow window
@pytest.mark.parametrize(
    "tab, prefix",
    [
        ("Explorer", "explore"),
        ("Translation", "translate"),
        ("Question answering", "answer"),
        ("Text generation", "generate"),
    ],
)
def test_every_control_label_is_whole_at_420_px(browser, app_server, tab, prefix):
    page = _open(browser, app_server[1], tab, width=420)
    try:
        _run(page, prefix)
        cut = page.evaluate(
            """(prefix) => {
              const out = [];
              const panel = document.getElementById('tab-' + prefix);
              panel.querySelectorAll('label, [data-testid=block-info]').forEach(label => {
                if (!label.offsetParent || !label.innerText.trim()) return;
                const box = label.getBoundingClientRect();
                const range = document.createRange(); range.selectNodeContents(label);
                const text = range.getBoundingClientRect();
                if (box.width <= 0 || box.height <= 0 || box.left < 0 || box.right > window.innerWidth + 1
                    || text.right > window.innerWidth + 1 || text.width > box.width + 1)
                  out.push([label.innerText.slice(0, 40), Math.round(box.width), Math.round(text.width)]);
              });
              return out;
            }""",
            prefix,
        )
        assert cut == [], cut
        assert page.evaluate("document.documentElement.scrollWidth") <= 421  # the page never scrolls sideways
        _shot(page, f"readable-420px-{prefix}")
    finally:
        page.close()


def test_the_neuron_table_scrolls_sideways_at_420_px(browser, app_server):
    page = _open(browser, app_server[1], "Explorer", width=420)
    try:
        _run(page, "explore", TEXT)
        _choose(page, "explore-head", "0")
        page.locator("#explore-heatmap .attn-title").get_by_text("layer 0, head 0").wait_for(timeout=WAIT_MS)
        canvas = page.locator("#explore-heatmap canvas.attn-hm-canvas")
        box = canvas.bounding_box()
        canvas.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.5})
        page.locator("#explore-neuron .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
        scroller = page.locator("#explore-neuron .attn-nv-scroll")
        sizes = scroller.evaluate("s => [s.scrollWidth, s.clientWidth, s.getBoundingClientRect().right]")
        assert sizes[0] > sizes[1] and sizes[2] <= 421, sizes  # wider than the window: it scrolls, inside it
        scroller.evaluate("s => { s.scrollLeft = s.scrollWidth; }")
        row = page.locator("#explore-neuron tr.attn-nv-row").first
        last = row.locator("td").last.bounding_box()
        assert last["x"] + last["width"] <= 421  # the last column can be scrolled into view ...
        key = row.locator("td.attn-nv-key").bounding_box()
        assert (
            key["x"] >= sizes[2] - scroller.evaluate("s => s.clientWidth") - 1
        )  # ... with each row's key still beside it
        _shot(page, "readable-420px-neuron", "#explore-neuron")
    finally:
        page.close()


# ----------------------------------------------------------------------------- 7. QA and generation
@pytest.mark.parametrize("tab, prefix", [("Question answering", "answer"), ("Text generation", "generate")])
def test_qa_and_generation_have_the_grid_head_view_and_neuron_view(browser, app_server, tab, prefix):
    page = _open(browser, app_server[1], tab)
    try:
        _run(page, prefix)
        page.locator(f'#{prefix}-grid button.attn-cell[data-layer="1"][data-head="0"]').click()
        page.locator(f"#{prefix}-heatmap .attn-title").get_by_text("layer 1, head 0").wait_for(timeout=WAIT_MS)
        head = _head_view(page, prefix)
        _wait_attribute(page, f"#{prefix}-head-view .attn-view", "data-layer", "1")
        assert head.get_attribute("data-heads") == "0"
        page.get_by_text("Neuron view (how one weight is made").click()
        canvas = page.locator(f"#{prefix}-heatmap canvas.attn-hm-canvas")
        box = canvas.bounding_box()
        canvas.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.9})
        row = json.loads(page.locator(f"#{prefix}-pick textarea").input_value())["query"]  # what the click sent
        page.wait_for_function(
            "([prefix, row]) => { const t = document.querySelector('#' + prefix + '-neuron .attn-title');"
            " return t && t.textContent.includes('layer 1, head 0,') && t.textContent.includes(' ' + row + ' \u201c'); }",
            arg=[prefix, row],
            timeout=WAIT_MS,
        )
        shown = _payload(page, f"#{prefix}-heatmap")
        assert shown["chosen"] == row
        keys = len(shown["k"])
        cells = np.array(shown["m"][row * keys : (row + 1) * keys], dtype=np.float64) / 10 ** shown["decimals"]
        reference = [
            float(v)
            for v in page.eval_on_selector_all(
                f"#{prefix}-neuron td.attn-checked-against", "cells => cells.map(c => c.dataset.value)"
            )
        ]
        np.testing.assert_allclose(reference, cells, atol=1e-5)  # the neuron view's weights are the heatmap's row
        _shot(page, f"readable-{prefix}-views")
    finally:
        page.close()
