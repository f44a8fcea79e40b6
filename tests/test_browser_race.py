"""Runs and redraws in flight together, in a real headless Chromium: whatever order Gradio finishes
them in, the Explorer's final page (heatmap, badge, token labels, status, Layer) belongs to the
newest run. A gate in this process (the app is served in-process) holds the drawing of any text
with the word MARKER until the test opens it, so a redraw or a run is in flight deterministically."""

from __future__ import annotations

import threading

import pytest
from test_browser import SCREENSHOTS, WAIT_MS  # one Chromium set-up for every browser file

pytestmark = pytest.mark.browser

MARKER = "slow"  # one WordPiece token of all-MiniLM-L6-v2
OLD_TEXT = "slow slow slow is the first text."
NEW_TEXT = "The cat sat on the mat."
GATE_S = 30  # the longest a held drawing waits for the test (a failing test, not a hang)
SETTLE_MS = 1500  # after a held drawing is let go: time for its outputs to reach the page, if they do
EXAMPLE = 2  # "Attention is all you need." in the Explorer's examples
TOAST_IN_MS = 500  # a Gradio toast's entrance animation


class Gate:
    """Holds the first explorer.heatmap_html of a text containing MARKER after close(), until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()  # a held drawing is waiting
        self.left = threading.Event()  # a held drawing has finished
        self.opened.set()

    def close(self) -> None:
        self.entered.clear()
        self.left.clear()
        self.opened.clear()

    def wrap(self, draw):
        def held_draw(matrix, query_labels, *args, **kwargs):
            held = MARKER in query_labels and not self.opened.is_set() and not self.entered.is_set()
            if held:
                self.entered.set()
                assert self.opened.wait(GATE_S), "the test never opened the gate"
            try:
                return draw(matrix, query_labels, *args, **kwargs)
            finally:
                if held:
                    self.left.set()

        return held_draw


@pytest.fixture
def gate(monkeypatch):
    from attn_demos.ui import explorer

    gate = Gate()
    monkeypatch.setattr(explorer, "heatmap_html", gate.wrap(explorer.heatmap_html))
    yield gate
    gate.opened.set()  # never leave a server thread waiting


@pytest.fixture(scope="module")
def page(browser, app_server):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(app_server[1], wait_until="load")
    page.get_by_role("tab", name="Explorer").click()
    yield page
    page.close()


@pytest.fixture(scope="module")
def tokens(minilm_path):
    """The tokens the Explorer shows for a text: [CLS], the tokenizer's pieces, [SEP]."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    return lambda text: ["[CLS]", *tokenizer.tokenize(text), "[SEP]"]


def _run(page, text: str) -> None:
    page.locator("#explore-text textarea").fill(text)
    page.locator("#explore-run").click()


def _shown_tokens(page) -> list[str]:
    return page.locator("#explore-received .attn-token").all_inner_texts()


def _wait_for_tokens(page, expected: list[str]) -> None:
    page.wait_for_function(
        "(want) => JSON.stringify([...document.querySelectorAll('#explore-received .attn-token')]"
        ".map(e => e.innerText)) === JSON.stringify(want)", arg=expected, timeout=WAIT_MS,
    )


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator(f'#{elem_id} [role=option][aria-label="{option}"]').first.click()


def _let_go(page, gate: Gate) -> None:
    """Open the gate and wait until the held drawing is done and its outputs could have landed."""
    gate.opened.set()
    assert gate.left.wait(GATE_S)
    page.wait_for_timeout(SETTLE_MS)


def test_a_redraw_of_the_old_text_never_overwrites_newer_runs(page, gate, tokens):
    _run(page, OLD_TEXT)
    _wait_for_tokens(page, tokens(OLD_TEXT))
    gate.close()
    _choose(page, "explore-layer", "2")  # a redraw of the old result, held in flight
    assert gate.entered.wait(GATE_S)
    _run(page, "")  # a failed run lands ...
    page.locator("#explore-status").get_by_text("⚠️").wait_for(timeout=WAIT_MS)
    _run(page, NEW_TEXT)  # ... then a valid one
    _wait_for_tokens(page, tokens(NEW_TEXT))
    _let_go(page, gate)
    assert _shown_tokens(page) == tokens(NEW_TEXT)
    assert MARKER not in page.locator("#explore-heatmap").inner_html()
    assert _heatmap_title(page) == "self-attention · layer 2, mean of heads"
    assert _dropdown_values(page) == ("2", "mean")  # the layer and head drawn
    assert page.locator("#explore-status").inner_text().strip() == ""  # not the failed run's message
    assert "✓" in page.locator("#explore-badge").inner_text()


def test_an_older_run_never_overwrites_a_newer_one(page, gate, tokens):
    from attn_demos.tasks.examples import load_examples

    gate.close()
    _run(page, OLD_TEXT)  # held in flight
    assert gate.entered.wait(GATE_S)
    example = load_examples("explore")[EXAMPLE]["text"]
    page.locator("#tab-explore button.gallery-item").nth(EXAMPLE).click()  # a newer run lands first
    _wait_for_tokens(page, tokens(example))
    _let_go(page, gate)
    assert page.locator("#explore-text textarea").input_value() == example
    assert _shown_tokens(page) == tokens(example)
    assert MARKER not in page.locator("#explore-heatmap").inner_html()


def test_quick_changes_of_layer_and_head_end_drawing_what_the_controls_show(page, gate, tokens):
    _run(page, OLD_TEXT)
    _wait_for_tokens(page, tokens(OLD_TEXT))
    _choose(page, "explore-head", "mean")
    gate.close()
    _choose(page, "explore-layer", "1")  # held in flight ...
    assert gate.entered.wait(GATE_S)
    for elem_id, option in (("explore-layer", "2"), ("explore-head", "3"), ("explore-layer", "3")):  # ... changes meanwhile
        _choose(page, elem_id, option)
    _let_go(page, gate)
    page.wait_for_timeout(SETTLE_MS)  # the last change's redraw, which waited for the held one
    assert _heatmap_title(page) == "self-attention · layer 3, head 3"
    assert _dropdown_values(page) == ("3", "3")
    assert _shown_tokens(page) == tokens(OLD_TEXT)


def _heatmap_title(page) -> str:
    return page.locator("#explore-heatmap").inner_text().split("\n")[0]


def _dropdown_values(page) -> tuple[str, str]:
    return tuple(page.locator(f"#explore-{name} input").first.input_value() for name in ("layer", "head"))


def test_a_grid_click_while_a_redraw_is_held_keeps_the_clicked_layer_and_head(page, gate, tokens):
    _run(page, OLD_TEXT)
    _wait_for_tokens(page, tokens(OLD_TEXT))
    _choose(page, "explore-head", "mean")
    gate.close()
    _choose(page, "explore-layer", "1")  # held in flight
    assert gate.entered.wait(GATE_S)
    page.locator('#explore-grid button.attn-cell[data-layer="4"][data-head="5"]').click()
    page.wait_for_function(
        "() => document.getElementById('explore-heatmap').innerText.startsWith('self-attention · layer 4, head 5')",
        timeout=WAIT_MS,
    )
    _let_go(page, gate)
    assert _heatmap_title(page) == "self-attention · layer 4, head 5"
    assert _dropdown_values(page) == ("4", "5")


def test_one_layer_choice_draws_once(page, monkeypatch, tokens):
    """A Dropdown selection sends its change twice at once; the second is not drawn again."""
    from attn_demos.ui import explorer

    drawn = []  # the shape of each heatmap the server draws

    def counted(matrix, query_labels, *args, **kwargs):
        drawn.append(matrix.shape)
        return heatmap_html(matrix, query_labels, *args, **kwargs)

    heatmap_html = explorer.heatmap_html
    _run(page, NEW_TEXT)
    _wait_for_tokens(page, tokens(NEW_TEXT))
    page.wait_for_timeout(SETTLE_MS)
    monkeypatch.setattr(explorer, "heatmap_html", counted)
    _choose(page, "explore-layer", "4")
    page.wait_for_function(
        "() => document.querySelector('#explore-heatmap').innerText.includes('layer 4')", timeout=WAIT_MS
    )
    page.wait_for_timeout(SETTLE_MS)
    assert len(drawn) == 1, drawn


def test_a_visitor_whose_result_was_let_go_is_asked_to_run_again(page, monkeypatch, use_settings, tokens, app_server):
    """Two visitors, room for one result ($ATTN_DEMOS_KEPT_MB): the first visitor's next view says
    that its result was let go of and asks for a new run, which then works."""
    from attn_demos.ui import kept

    monkeypatch.setattr(kept, "KEPT", kept.KeptResults())
    use_settings(kept_mb=0.001)  # smaller than any result: only the newest stays
    _run(page, NEW_TEXT)
    _wait_for_tokens(page, tokens(NEW_TEXT))
    _choose(page, "explore-head", "mean")
    other = page.context.browser.new_page(viewport={"width": 1280, "height": 1400})
    other.goto(app_server[1], wait_until="load")
    other.get_by_role("tab", name="Explorer").click()
    _run(other, OLD_TEXT)
    _wait_for_tokens(other, tokens(OLD_TEXT))
    _choose(page, "explore-layer", "3")
    page.locator("#explore-status").get_by_text("let go").wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-status").inner_text().strip() == f"⚠️ {kept.released_text()}"
    _run(page, NEW_TEXT)
    _wait_for_tokens(page, tokens(NEW_TEXT))
    assert "✓" in page.locator("#explore-badge").inner_text()
    assert _heatmap_title(page) == "self-attention · layer 3, mean of heads"
    other.close()


def test_an_export_that_finishes_after_a_newer_run_is_not_shown_and_the_person_is_told(page, monkeypatch, tokens):
    """Export of the old text held in flight; a newer run lands; the export then finishes: no file
    of the old text appears under the new one, and a toast says why the click gave nothing."""
    from attn_demos.ui import explorer, run_order

    gate = Gate()
    monkeypatch.setattr(explorer, "heatmap_image", gate.wrap(explorer.heatmap_image))  # what Export draws
    try:
        _run(page, OLD_TEXT)
        _wait_for_tokens(page, tokens(OLD_TEXT))
        if not page.locator("#explore-export").is_visible():
            page.locator("#explore-export-accordion").get_by_text("Export").first.click()
        gate.close()
        page.locator("#explore-export").click()
        assert gate.entered.wait(GATE_S)
        _run(page, NEW_TEXT)
        _wait_for_tokens(page, tokens(NEW_TEXT))
        gate.opened.set()
        assert gate.left.wait(GATE_S)
        told = run_order.STALE_RUN_TEXT.format(what="export")
        page.get_by_text(told).first.wait_for(timeout=WAIT_MS)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(TOAST_IN_MS)  # the toast slides in: the screenshot shows it once it is there
        page.screenshot(path=str(SCREENSHOTS / "app-explorer-stale-export-toast.png"))
        assert page.locator("#explore-png a").count() == 0  # no file of the old text
        assert _shown_tokens(page) == tokens(NEW_TEXT)
        page.locator("#explore-export").click()  # control: clicked again, the new text's export arrives
        page.locator("#explore-png a").first.wait_for(timeout=WAIT_MS)
    finally:
        gate.opened.set()
