"""The interactive views inside the real app, driven in headless Chromium as a person would: hover
a token of the head view, click a grid cell, click a heatmap row for the neuron view, a failed run
then a valid one, a long input and a narrow window. Expected numbers come from the task run in
this process (the same embedded MiniLM, deterministic on the CPU). Screenshots: artifacts/screenshots/."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from test_browser import SCREENSHOTS, WAIT_MS  # one Chromium set-up for both files

pytestmark = pytest.mark.browser

TEXT = "The animal didn't cross the street because it was too tired."
HOVERED_TOKEN = 8  # "street" in [CLS] the animal didn ' t cross the street ...
LONG_WORDS = 480  # ~500 tokens with [CLS]/[SEP] and word pieces, under MiniLM's 512


@pytest.fixture(scope="module")
def page(browser, app_server):
    page = _open(browser, app_server[1], width=1280)
    _opening_result(page)  # the page opens on TEXT, the first example, with no click
    yield page
    page.close()


@pytest.fixture(scope="module")
def library():
    from attn_demos.tasks.explorer import explore

    return explore(TEXT).library  # (L, H, T, T) what the app's run shows


def _open(browser, url: str, width: int):
    page = browser.new_page(viewport={"width": width, "height": 1400})
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="Explorer").wait_for(timeout=WAIT_MS)
    page.get_by_role("tab", name="Explorer").click()
    return page


def _opening_result(page) -> None:
    """Wait for the result the Explorer opens on (its first example, TEXT)."""
    page.locator("#explore-badge").get_by_text("recomputed from weights").wait_for(timeout=WAIT_MS)
    page.locator("#explore-heatmap .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-text textarea").input_value() == TEXT


def _run_explorer(page, text: str) -> None:
    previous = page.locator("#explore-heatmap .attn-view").get_attribute("data-attn-key") if _has_view(page) else None
    page.locator("#explore-text textarea").fill(text)
    page.locator("#explore-run").click()
    page.locator("#explore-badge").get_by_text("recomputed from weights").wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        "(key) => { const v = document.querySelector('#explore-heatmap .attn-view.attn-ready');"
        " return v && v.dataset.attnKey !== key; }", arg=previous, timeout=WAIT_MS,
    )


def _has_view(page) -> bool:
    return page.locator("#explore-heatmap .attn-view").count() > 0


def _shot(page, name: str, selector: str | None = None) -> None:
    path = SCREENSHOTS / f"{name}.png"
    if selector:
        page.locator(selector).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 3_000


def _visible_lines(page) -> int:
    return int(page.locator("#explore-head-view .attn-view").get_attribute("data-visible-lines"))


def _expected_lines(weights: np.ndarray, query: int | None = None) -> int:
    """Lines of the heads shown that the head view draws at first: weights that round to ≥ 0.1
    (head_view.SHOWN_FROM)."""
    kept = np.round(weights, 3) >= 0.1  # (H, T, T)
    return int(kept.sum() if query is None else kept[:, query, :].sum())


def _heatmap_payload(page) -> dict:
    return json.loads(page.locator("#explore-heatmap .attn-view").get_attribute("data-attn-payload"))


def test_hovering_a_token_in_the_head_view_shows_only_its_lines(page, library):
    page.locator("#explore-head-view .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
    page.mouse.move(0, 0)
    before = _visible_lines(page)
    heads = [int(h) for h in page.locator("#explore-head-view .attn-view").get_attribute("data-heads").split(",")]
    assert before == _expected_lines(library[0, heads])  # the run's Layer (0), the heads it shows at first
    page.locator(f'#explore-head-view .attn-hv-left .attn-hv-tok[data-i="{HOVERED_TOKEN}"]').hover()
    after = _visible_lines(page)
    assert after == _expected_lines(library[0, heads], HOVERED_TOKEN) < before
    _shot(page, "app-explorer-head-view-hover", "#explore-head-view")
    page.mouse.move(0, 0)
    assert _visible_lines(page) == before


def test_clicking_a_grid_cell_shows_that_layer_and_head(page, library):
    cell = page.locator('#explore-grid button.attn-cell[data-layer="2"][data-head="3"]')
    cell.click()
    page.locator("#explore-heatmap .attn-title").get_by_text("layer 2, head 3").wait_for(timeout=WAIT_MS)
    page.locator('#explore-grid button.attn-cell.attn-shown[data-layer="2"][data-head="3"]').wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-grid .attn-shown").count() == 1
    assert page.locator("#explore-layer input").first.input_value() == "2"
    assert page.locator("#explore-head input").first.input_value() == "3"
    payload = _heatmap_payload(page)
    shown = np.array(payload["m"], dtype=np.float64).reshape(len(payload["q"]), -1) / 10 ** payload["decimals"]
    np.testing.assert_allclose(shown, library[2, 3], atol=1e-6)
    assert not np.allclose(shown, library[2, 2], atol=1e-3)  # control: a neighbouring head differs
    _shot(page, "app-explorer-grid-click", "#explore-grid")


def test_the_neuron_views_weight_equals_the_heatmaps_value(page, library):
    page.locator("#explore-heatmap .attn-title").get_by_text("layer 2, head 3").wait_for(timeout=WAIT_MS)
    canvas = page.locator("#explore-heatmap canvas.attn-hm-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.6})
    title = page.locator("#explore-neuron .attn-title")
    title.get_by_text("neuron view: layer 2, head 3").wait_for(timeout=WAIT_MS)
    query = int(re.search(r"query (\d+)", title.inner_text()).group(1))
    assert page.locator("#explore-query input").first.input_value().startswith(f"{query}: ")
    payload = _heatmap_payload(page)
    assert payload["chosen"] == query  # the clicked row is marked
    keys = len(payload["k"])
    row = np.array(payload["m"][query * keys:(query + 1) * keys], dtype=np.float64) / 10 ** payload["decimals"]
    checked_against = [float(v) for v in page.eval_on_selector_all(
        "#explore-neuron td.attn-checked-against", "cells => cells.map(c => c.dataset.value)")]
    softmax = [float(v) for v in page.eval_on_selector_all(
        "#explore-neuron td.attn-softmax", "cells => cells.map(c => c.dataset.value)")]
    np.testing.assert_allclose(checked_against, row, atol=1e-6)  # the library weight, as the heatmap shows it
    np.testing.assert_allclose(softmax, row, atol=1e-6)  # recomputed from q and k
    np.testing.assert_allclose(checked_against, library[2, 3, query], atol=1e-6)
    other = (query + 1) % len(payload["q"])
    assert not np.allclose(checked_against, library[2, 3, other], atol=1e-6)  # control: another row differs
    _shot(page, "app-explorer-neuron", "#explore-neuron")
    _shot(page, "app-explorer-heatmap-row", "#explore-heatmap")


def test_a_failed_run_then_a_valid_one_draws_every_view(page):
    page.locator("#explore-text textarea").fill("   ")
    page.locator("#explore-run").click()
    page.locator("#explore-status").get_by_text("⚠️").wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-heatmap .attn-view").count() == 0  # the old result is cleared
    _run_explorer(page, "Attention is all you need.")
    assert "✓" in page.locator("#explore-badge").inner_text()
    assert page.locator("#explore-grid button.attn-cell").count() == 6 * 12  # MiniLM: 6 layers × 12 heads
    page.locator("#explore-head-view .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-head-view .attn-hv-left .attn-hv-tok").count() == 8
    assert page.locator("#explore-heatmap .attn-view").get_attribute("data-shown-rows") == "8"
    _shot(page, "app-explorer-after-failed-run")


def test_a_long_input_renders(page):
    text = " ".join(f"word{i % 37}" for i in range(LONG_WORDS))
    _run_explorer(page, text)
    rows = int(page.locator("#explore-heatmap .attn-view").get_attribute("data-shown-rows"))
    assert 480 <= rows <= 512
    page.locator("#explore-head-view .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-head-view .attn-hv-left .attn-hv-tok").count() == rows
    assert page.locator("#explore-grid button.attn-cell").count() == 6 * 12
    _shot(page, "app-explorer-long-input")


def test_a_narrow_window(browser, app_server):
    page = _open(browser, app_server[1], width=420)
    try:
        _opening_result(page)
        page.locator("#explore-head-view .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 420 + 1, width  # the page does not scroll sideways; the views scroll inside
        heatmap = page.locator("#explore-heatmap .attn-view").bounding_box()
        assert heatmap["x"] >= 0 and heatmap["x"] + heatmap["width"] <= 421
        _shot(page, "app-explorer-narrow-420px")
    finally:
        page.close()


def test_translation_grid_click_row_click_and_cross_head_view(page, checkpoints):
    page.get_by_role("tab", name="Translation").click()
    page.locator("#translate-text textarea").fill("The cat sat on the mat.")
    page.locator("#translate-run").click()
    page.locator("#translate-badge").get_by_text("recomputed from weights").wait_for(timeout=WAIT_MS)
    page.locator("#translate-grid button.attn-cell").first.wait_for(timeout=WAIT_MS)
    page.locator('#translate-grid button.attn-cell[data-layer="1"][data-head="1"]').click()
    page.locator("#translate-heatmap .attn-title").get_by_text("layer 1, head 1").wait_for(timeout=WAIT_MS)
    assert page.locator("#translate-layer input").first.input_value() == "1"
    payload = _payload(page, "#translate-heatmap")
    assert payload["chosen"] == 0  # the first output token is the one inspected at first
    canvas = page.locator("#translate-heatmap canvas.attn-hm-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.9})  # a row far from the first
    row = json.loads(page.locator("#translate-pick textarea").input_value())["query"]  # what the click sent
    assert row > 0
    page.wait_for_function(
        "(row) => JSON.parse(document.querySelector('#translate-heatmap .attn-view').dataset.attnPayload).chosen === row",
        arg=row, timeout=WAIT_MS,
    )
    assert page.locator("#translate-target input").first.input_value().startswith(f"{row}: ")
    assert f"output token {row} " in page.locator("#translate-highlight").inner_text()
    head = page.locator("#translate-head-view .attn-view.attn-ready")
    head.wait_for(timeout=WAIT_MS)
    assert head.locator(".attn-hv-left .attn-hv-tok").count() == len(payload["q"])  # output tokens
    assert head.locator(".attn-hv-right .attn-hv-tok").count() == len(payload["k"])  # source tokens
    page.get_by_text("Neuron view (how one cross-attention weight is made)").click()
    neuron_title = page.locator("#translate-neuron .attn-title")
    neuron_title.get_by_text(f"layer 1, head 1, output token {row} ").wait_for(timeout=WAIT_MS)
    shown = _payload(page, "#translate-heatmap")
    keys = len(shown["k"])
    cells = np.array(shown["m"][row * keys:(row + 1) * keys], dtype=np.float64) / 10 ** shown["decimals"]
    checked_against = [float(v) for v in page.eval_on_selector_all(
        "#translate-neuron td.attn-checked-against", "cells => cells.map(c => c.dataset.value)")]
    np.testing.assert_allclose(checked_against, cells, atol=1e-6)  # cross-attention: neuron weight = heatmap cell
    _shot(page, "app-translation-neuron", "#translate-neuron")
    _shot(page, "app-translation-views")


def _payload(page, selector: str) -> dict:
    return json.loads(page.locator(f"{selector} .attn-view").get_attribute("data-attn-payload"))
