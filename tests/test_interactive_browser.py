"""The interactive views in a real headless Chromium, on a tiny Gradio app launched here with
launch(head=INTERACTIVE_HEAD): hover, click and the hidden-textbox contract, as a person would.
Screenshots go to artifacts/screenshots/views-*.png."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_server import free_port
from test_interactive import neuron_terms, random_attention

from attn_demos.render.interactive import (
    INTERACTIVE_HEAD,
    answer_span_html,
    head_grid_html,
    head_view_html,
    heatmap_html,
    image_legend_html,
    neuron_view_html,
    numbers_table_html,
    parse_selection,
)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
WAIT_MS = 30_000
TOKENS = ["[CLS]", "the", "animal", "didn", "'", "t", "cross", "the ", "street", "because", "it", "was", "too",
          "tired", ".", "[SEP]"]  # "the " keeps every label unique, so a tooltip names its cell
LONG = 1000
SOURCE = ["▁The", "▁cat", "▁slept", ".", "</s>"]  # encoder tokens (keys of cross-attention)
TARGET = ["<pad>", "▁Die", "▁Katze", "▁schlief", "."]  # decoder tokens (queries)
SEED_WEIGHTS = np.array([[0.359543, 0.640457]])  # the seed tutorial with q = [0, 1, 1]
XSS = ['<img src=x onerror="window.__attnXss=1">', "<script>window.__attnXss=2</script>", "ok"]


def _weights() -> np.ndarray:
    return random_attention(np.random.default_rng(11), 3, 4, len(TOKENS), len(TOKENS))  # (L, H, T, T)


def _cross() -> np.ndarray:
    return random_attention(np.random.default_rng(14), 2, 3, len(TARGET), len(SOURCE))  # (L, H, T_decoder, T_encoder)


def _terms() -> dict:
    return neuron_terms(np.random.default_rng(12), TOKENS, "it")


def _build_app():
    import gradio as gr

    weights = _weights()
    long_matrix = random_attention(np.random.default_rng(13), LONG, LONG, sharpness=3.0)
    long_labels = [f"w{i}" for i in range(LONG)]
    cross = _cross()
    clicks = {"n": 0}

    def on_pick(text):
        clicks["n"] += 1
        choice = parse_selection(text)
        if choice is None:
            return gr.update(), gr.update()
        if choice["view"] == "grid":
            layer, head = choice["layer"], choice["head"]
            title = f"layer {layer}, head {head}"
            return f"{title} (click {clicks['n']})", heatmap_html(weights[layer, head], TOKENS, TOKENS, title, target_id="views-pick")
        return f"{choice['view']} query {choice['query']} ({choice['token']}) (click {clicks['n']})", gr.update()

    with gr.Blocks() as demo:
        pick = gr.Textbox(elem_id="views-pick", visible="hidden")
        picked = gr.Markdown("nothing picked", elem_id="views-picked")
        grid = gr.HTML(head_grid_html(weights, shown=(0, 0), title="every head", target_id="views-pick"), elem_id="views-grid")
        heatmap = gr.HTML(heatmap_html(weights[0, 0], TOKENS, TOKENS, "layer 0, head 0", chosen_query=10, marked_rows=[3],
                                       target_id="views-pick"), elem_id="views-heatmap")
        gr.HTML(head_view_html(weights, TOKENS, title="head view", target_id="views-pick"), elem_id="views-head")
        gr.HTML(neuron_view_html(_terms(), "neuron view: layer 3, head 5, query “it”"), elem_id="views-neuron")
        gr.HTML(answer_span_html(TOKENS[1:-1], weights[0, 0, 0, 1:-1], 8, 9, "answer: “because it”")
                + image_legend_html("inferno", 0.0, 0.31, "patch attention (image overlay)"), elem_id="views-answer")
        gr.HTML(numbers_table_html(long_matrix[:, :5], long_labels, [f"k{i}" for i in range(5)], "weights"), elem_id="views-table")
        gr.HTML(heatmap_html(long_matrix, long_labels, long_labels, f"{LONG} tokens"), elem_id="views-long")
        gr.HTML(heatmap_html(SEED_WEIGHTS, ["q"], ["k0", "k1"], "Basics: weights")
                + numbers_table_html(SEED_WEIGHTS, ["q"], ["k0", "k1"], decimals=6), elem_id="views-basics")
        gr.HTML(heatmap_html(np.eye(3), XSS, XSS, XSS[0]) + head_view_html(np.ones((1, 1, 3, 3)) / 3, XSS), elem_id="views-xss")
        gr.HTML(head_view_html(cross, TARGET, SOURCE, title="cross-attention", layer=1), elem_id="views-cross")
        with gr.Tabs():
            with gr.Tab("first"):
                gr.Markdown("a view in the second tab is drawn when the tab opens")
            with gr.Tab("second"):
                gr.HTML(heatmap_html(weights[1, 2], TOKENS, TOKENS, "in a tab"), elem_id="views-tab")
        pick.change(on_pick, pick, [picked, heatmap])
    del grid
    return demo, weights, long_matrix


@pytest.fixture(scope="module")
def app():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("ATTN_DEMOS_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is missing: install Debian's chromium (bash scripts/setup.sh --with-browser)")
        pytest.skip("Chromium is not installed (bash scripts/setup.sh --with-browser installs it)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    demo, weights, long_matrix = _build_app()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, head=INTERACTIVE_HEAD)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            yield {"browser": browser, "url": f"http://127.0.0.1:{port}/", "weights": weights, "long": long_matrix}
            browser.close()
    finally:
        demo.close()


def _open(app, width: int = 1280, query: str = ""):
    page = app["browser"].new_page(viewport={"width": width, "height": 1000})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app["url"] + query, wait_until="load")
    for name in ("grid", "heatmap", "head", "neuron", "long", "xss", "cross"):
        page.locator(f"#views-{name} .attn-view.attn-ready").first.wait_for(timeout=WAIT_MS)
    page.errors = errors
    return page


@pytest.fixture(scope="module")
def page(app):
    page = _open(app)
    yield page
    assert page.errors == []
    page.close()


def _shot(locator, name: str) -> Path:
    path = SCREENSHOTS / f"views-{name}.png"
    locator.screenshot(path=str(path))
    assert path.stat().st_size > 3_000
    return path


def _lines(page) -> int:
    return int(page.locator("#views-head .attn-view").get_attribute("data-visible-lines"))


def _expected_lines(weights, layer, heads, query=None) -> int:
    """Lines the head view should draw: weights that round to ≥ 0.001 (the small-input rule)."""
    kept = np.round(weights[layer, heads], 3) >= 0.001  # (heads, T, T)
    return int(kept.sum() if query is None else kept[:, query, :].sum())


def test_grid_click_reaches_a_python_handler_that_redraws_the_heatmap(page, app):
    cell = page.locator('#views-grid button.attn-cell[data-layer="2"][data-head="3"]')
    cell.click()
    page.locator("#views-picked").get_by_text("layer 2, head 3").wait_for(timeout=WAIT_MS)
    page.locator("#views-heatmap .attn-title").get_by_text("layer 2, head 3").wait_for(timeout=WAIT_MS)
    assert "attn-shown" in cell.get_attribute("class")
    assert page.locator("#views-grid .attn-shown").count() == 1
    first = page.locator("#views-picked").inner_text()
    cell.click()  # the same cell again still reaches Python (every click carries a new nonce)
    page.wait_for_function(
        "(before) => document.querySelector('#views-picked').innerText !== before", arg=first, timeout=WAIT_MS)
    assert "layer 2, head 3" in page.locator("#views-picked").inner_text()
    # the redrawn heatmap carries the chosen head's numbers
    _hover_cell_and_check(page, app["weights"][2, 3])
    _shot(page.locator("#views-grid"), "grid")


def _tooltip(page) -> str:
    tip = page.locator(".attn-tooltip")
    tip.wait_for(state="visible", timeout=WAIT_MS)
    return tip.inner_text()


def _hover_cell_and_check(page, matrix, fractions=((0.7, 0.6), (0.9, 0.95), (0.5, 0.8))):
    canvas = page.locator("#views-heatmap canvas.attn-hm-canvas")
    box = canvas.bounding_box()
    checked = 0
    for fx, fy in fractions:
        canvas.hover(position={"x": box["width"] * fx, "y": box["height"] * fy})
        text = _tooltip(page)
        found = re.fullmatch(r"(.+) → (.+): (-?\d+\.\d{3})", text)
        assert found, text
        i, j = TOKENS.index(found.group(1)), TOKENS.index(found.group(2))
        assert abs(float(found.group(3)) - matrix[i, j]) <= 5e-4 + 5e-5, (text, matrix[i, j])
        checked += 1
    assert checked == len(fractions)


def test_heatmap_hover_shows_the_value_and_a_row_click_selects_the_query(page, app):
    title = page.locator("#views-heatmap .attn-title").inner_text()
    layer, head = (int(x) for x in re.findall(r"\d+", title))
    _hover_cell_and_check(page, app["weights"][layer, head])
    canvas = page.locator("#views-heatmap canvas.attn-hm-canvas")
    box = canvas.bounding_box()
    canvas.hover(position={"x": box["width"] * 0.8, "y": box["height"] * 0.5})
    query = TOKENS.index(_tooltip(page).split(" → ")[0])
    canvas.click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.5})
    page.locator("#views-picked").get_by_text(f"heatmap query {query} ").wait_for(timeout=WAIT_MS)
    assert f"selected query: {TOKENS[query]}" in page.locator("#views-heatmap .attn-controls .attn-note").text_content()
    root = page.locator("#views-heatmap .attn-view")
    assert root.get_attribute("data-shown-rows") == str(len(TOKENS))
    hide = page.locator("#views-heatmap .attn-check", has_text="hide special tokens").locator("input")
    hide.check()
    assert root.get_attribute("data-shown-rows") == str(len(TOKENS) - 2)  # [CLS] and [SEP] hidden
    assert "not renormalised" in page.locator("#views-heatmap .attn-controls .attn-note").inner_text()
    _shot(page.locator("#views-heatmap"), "heatmap-hidden-special")
    hide.uncheck()
    assert root.get_attribute("data-shown-rows") == str(len(TOKENS))
    canvas.hover(position={"x": box["width"] * 0.6, "y": box["height"] * 0.7})
    _tooltip(page)
    _shot(page.locator("#views-heatmap"), "heatmap")


def test_head_view_hover_shows_only_that_tokens_lines(page, app):
    weights = app["weights"]
    page.mouse.move(0, 0)
    all_heads = list(range(weights.shape[1]))
    _show_every_line_of_every_head(page.locator("#views-head"))
    assert _lines(page) == _expected_lines(weights, 0, all_heads)
    token = page.locator('#views-head .attn-hv-left .attn-hv-tok[data-i="10"]')  # "it"
    token.hover()
    assert _lines(page) == _expected_lines(weights, 0, all_heads, query=10) < _expected_lines(weights, 0, all_heads)
    _shot(page.locator("#views-head"), "head-hover")
    page.mouse.move(0, 0)
    assert _lines(page) == _expected_lines(weights, 0, all_heads)
    page.locator('#views-head button.attn-chip[data-head="0"]').click()  # head 0 off
    assert _lines(page) == _expected_lines(weights, 0, all_heads[1:])
    page.locator("#views-head select.attn-layer").select_option("2")
    assert _lines(page) == _expected_lines(weights, 2, all_heads[1:])
    page.locator('#views-head button.attn-chip[data-head="0"]').click()
    token.click()  # a click keeps the focus and tells the app
    page.mouse.move(0, 0)
    assert _lines(page) == _expected_lines(weights, 2, all_heads, query=10)
    page.locator("#views-picked").get_by_text("head query 10 (it)").wait_for(timeout=WAIT_MS)
    token.click()
    page.mouse.move(0, 0)
    assert _lines(page) == _expected_lines(weights, 2, all_heads)
    _shot(page.locator("#views-head"), "head")
    hide = page.locator("#views-head .attn-check", has_text="hide special tokens").locator("input")
    hide.check()  # no lines from or to [CLS] / [SEP]
    inner = np.round(weights[2][:, 1:-1, 1:-1], 3) >= 0.001
    assert _lines(page) == int(inner.sum())
    hide.uncheck()


def _show_every_line_of_every_head(view) -> None:
    """The head view opens on a few heads and its stronger lines (head_view.py): all of them here."""
    view.locator(".attn-check", has_text="show all lines").locator("input").check()
    view.locator("button.attn-link", has_text="all").click()


def test_cross_attention_head_view_hover_on_a_key(page):
    cross = _cross()
    root = page.locator("#views-cross .attn-view")
    _show_every_line_of_every_head(root)
    assert int(root.get_attribute("data-visible-lines")) == int((np.round(cross[1], 3) >= 0.001).sum())
    assert root.locator(".attn-hv-left .attn-hv-tok").count() == 5 and root.locator(".attn-hv-right .attn-hv-tok").count() == 5
    root.locator('.attn-hv-right .attn-hv-tok[data-i="1"]').hover()  # "▁cat": only lines into it
    assert int(root.get_attribute("data-visible-lines")) == int((np.round(cross[1][:, :, 1], 3) >= 0.001).sum())
    _shot(page.locator("#views-cross"), "head-cross")
    page.mouse.move(0, 0)


def test_a_view_in_a_hidden_tab_is_drawn_when_the_tab_opens(page):
    page.get_by_role("tab", name="second").click()
    root = page.locator("#views-tab .attn-view.attn-ready")
    root.wait_for(timeout=WAIT_MS)
    canvas = root.locator("canvas.attn-hm-canvas")
    canvas.wait_for(timeout=WAIT_MS)
    assert canvas.bounding_box()["width"] > 200


def test_neuron_view_softmax_equals_the_given_weights(page):
    terms = _terms()
    values = page.eval_on_selector_all("#views-neuron td.attn-softmax", "cells => cells.map(c => c.dataset.value)")
    shown = page.eval_on_selector_all("#views-neuron td.attn-softmax", "cells => cells.map(c => c.textContent)")
    checked_against = page.eval_on_selector_all("#views-neuron td.attn-checked-against", "cells => cells.map(c => c.dataset.value)")
    assert len(values) == len(TOKENS)
    np.testing.assert_allclose([float(v) for v in values], terms["softmax"], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in checked_against], terms["checked_against"], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in shown], terms["softmax"], atol=5e-7 + 1e-12)
    assert not np.allclose([float(v) for v in values], np.roll(terms["softmax"], 1), atol=1e-6)  # control
    page.locator('#views-neuron tr.attn-nv-row[data-key="2"]').hover()
    detail = page.locator("#views-neuron .attn-nv-detail").inner_text()
    assert "key “animal”" in detail and f"{terms['sums'][2]:.6f}" in detail and f"{terms['softmax'][2]:.6f}" in detail
    _shot(page.locator("#views-neuron"), "neuron")
    _shot(page.locator("#views-answer"), "answer")
    _shot(page.locator("#views-table"), "table")


def test_a_1000_token_heatmap_zooms_and_scrolls(page, app):
    root = page.locator("#views-long .attn-view")
    root.locator("select").select_option("16")
    scroller = root.locator(".attn-scroll")
    scroller.evaluate("s => { s.scrollTop = 16 * 500; s.scrollLeft = 16 * 700; }")
    page.wait_for_timeout(100)
    canvas = root.locator("canvas.attn-hm-canvas")
    box = canvas.bounding_box()
    canvas.hover(position={"x": box["width"] * 0.7, "y": box["height"] * 0.7})
    found = re.fullmatch(r"w(\d+) → w(\d+): (\d\.\d{3})", _tooltip(page))
    assert found
    i, j = int(found.group(1)), int(found.group(2))
    assert 500 <= i < 560 and 700 <= j < 780  # the scrolled part, not the start
    assert abs(float(found.group(3)) - app["long"][i, j]) <= 5.5e-4
    _shot(root, "heatmap-1000")


def test_basics_small_matrix_carries_its_numbers(page):
    root = page.locator("#views-basics .attn-view")
    canvas = root.locator("canvas.attn-hm-canvas")
    box = canvas.bounding_box()
    canvas.hover(position={"x": box["width"] - 10, "y": box["height"] - 10})
    assert _tooltip(page) == "q → k1: 0.640"
    assert "0.640457" in page.locator("#views-basics table").inner_text()
    _shot(page.locator("#views-basics"), "basics")


def test_labels_cannot_inject_markup(page):
    assert page.evaluate("window.__attnXss") is None
    view = page.locator("#views-xss")
    assert view.locator("img").count() == 0 and view.locator("script").count() == 0
    assert view.locator(".attn-hv-tok").first.inner_text() == XSS[0]  # shown as text
    assert XSS[0] in view.locator(".attn-title").first.inner_text()


def test_narrow_viewport(app):
    page = _open(app, width=420)
    for name in ("heatmap", "head", "grid", "neuron"):
        assert page.locator(f"#views-{name}").bounding_box()["width"] <= 420
    page.screenshot(path=str(SCREENSHOTS / "views-narrow-420.png"), full_page=True)
    assert page.errors == []
    page.close()


def _luminance(css: str) -> float:
    red, green, blue = (float(v) for v in re.findall(r"[\d.]+", css)[:3])
    return (0.299 * red + 0.587 * green + 0.114 * blue) / 255


def test_dark_theme_keeps_shaded_tokens_and_controls_readable(app):
    page = _open(app, query="?__theme=dark")
    assert page.evaluate("getComputedStyle(document.body).color") != "rgb(17, 17, 17)"  # control: the theme is dark
    colours = page.eval_on_selector_all("#views-answer .attn-token", "ts => ts.map(t => getComputedStyle(t).color)")
    assert colours and set(colours) == {"rgb(17, 17, 17)"}
    select = page.locator("#views-heatmap .attn-controls select")
    text, ground = select.evaluate("s => [getComputedStyle(s).color, getComputedStyle(s).backgroundColor]")
    assert abs(_luminance(text) - _luminance(ground)) > 0.5, (text, ground)  # the theme's own, readable pair
    page.locator("#views-answer").screenshot(path=str(SCREENSHOTS / "views-dark-answer.png"))
    page.locator("#views-head").screenshot(path=str(SCREENSHOTS / "views-dark-head.png"))
    assert page.errors == []
    page.close()
